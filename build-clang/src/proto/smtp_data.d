build-clang/src/proto/smtp_data.o: src/proto/smtp_data.c \
  src/proto/smtp_data.h

src/proto/smtp_data.h:

build-clang/src/proto/smtp_parse.o: src/proto/smtp_parse.c \
  src/proto/smtp_parse.h src/core/util.h

src/proto/smtp_parse.h:

src/core/util.h:

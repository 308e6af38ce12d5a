build-clang/src/proto/smtp_reply.o: src/proto/smtp_reply.c \
  src/proto/smtp_reply.h src/core/util.h

src/proto/smtp_reply.h:

src/core/util.h:

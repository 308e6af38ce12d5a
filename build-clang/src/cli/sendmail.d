build-clang/src/cli/sendmail.o: src/cli/sendmail.c src/cli/cli.h \
  src/core/config.h src/core/fsutil.h src/core/util.h \
  src/proto/addrlist.h src/proto/smtp_parse.h src/proto/smtp_reply.h

src/cli/cli.h:

src/core/config.h:

src/core/fsutil.h:

src/core/util.h:

src/proto/addrlist.h:

src/proto/smtp_parse.h:

src/proto/smtp_reply.h:

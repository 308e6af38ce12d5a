build-clang/src/smtp/smtp_etrn.o: src/smtp/smtp_etrn.c \
  src/smtp/smtp_session.h src/core/server.h src/proto/header.h \
  src/proto/smtp_data.h src/proto/smtp_parse.h src/core/log.h \
  src/delivery/scheduler.h

src/smtp/smtp_session.h:

src/core/server.h:

src/proto/header.h:

src/proto/smtp_data.h:

src/proto/smtp_parse.h:

src/core/log.h:

src/delivery/scheduler.h:

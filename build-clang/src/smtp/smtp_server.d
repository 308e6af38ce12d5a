build-clang/src/smtp/smtp_server.o: src/smtp/smtp_server.c \
  src/smtp/smtp_server.h src/core/server.h src/smtp/smtp_session.h \
  src/proto/header.h src/proto/smtp_data.h src/proto/smtp_parse.h \
  src/core/addrcount.h src/core/config.h src/core/log.h src/core/util.h \
  src/core/workers.h src/delivery/dns.h src/delivery/scheduler.h \
  src/store/aliases.h src/store/queue.h src/store/users.h

src/smtp/smtp_server.h:

src/core/server.h:

src/smtp/smtp_session.h:

src/proto/header.h:

src/proto/smtp_data.h:

src/proto/smtp_parse.h:

src/core/addrcount.h:

src/core/config.h:

src/core/log.h:

src/core/util.h:

src/core/workers.h:

src/delivery/dns.h:

src/delivery/scheduler.h:

src/store/aliases.h:

src/store/queue.h:

src/store/users.h:

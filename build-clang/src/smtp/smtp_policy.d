build-clang/src/smtp/smtp_policy.o: src/smtp/smtp_policy.c \
  src/smtp/smtp_session.h src/core/server.h src/proto/header.h \
  src/proto/smtp_data.h src/proto/smtp_parse.h src/core/config.h \
  src/store/aliases.h

src/smtp/smtp_session.h:

src/core/server.h:

src/proto/header.h:

src/proto/smtp_data.h:

src/proto/smtp_parse.h:

src/core/config.h:

src/store/aliases.h:

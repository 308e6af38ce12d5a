build-clang/src/smtp/smtp_auth.o: src/smtp/smtp_auth.c \
  src/smtp/smtp_session.h src/core/server.h src/proto/header.h \
  src/proto/smtp_data.h src/proto/smtp_parse.h

src/smtp/smtp_session.h:

src/core/server.h:

src/proto/header.h:

src/proto/smtp_data.h:

src/proto/smtp_parse.h:

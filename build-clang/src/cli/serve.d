build-clang/src/cli/serve.o: src/cli/serve.c src/cli/cli.h \
  src/core/addrcount.h src/core/config.h src/core/fsutil.h \
  src/core/listener.h src/core/server.h src/core/log.h src/core/util.h \
  src/core/workers.h src/delivery/scheduler.h src/proto/base64.h \
  src/proto/passwd.h src/smtp/smtp_server.h src/store/aliases.h \
  src/store/queue.h src/store/users.h src/cli/serve_hooks.h

src/cli/cli.h:

src/core/addrcount.h:

src/core/config.h:

src/core/fsutil.h:

src/core/listener.h:

src/core/server.h:

src/core/log.h:

src/core/util.h:

src/core/workers.h:

src/delivery/scheduler.h:

src/proto/base64.h:

src/proto/passwd.h:

src/smtp/smtp_server.h:

src/store/aliases.h:

src/store/queue.h:

src/store/users.h:

src/cli/serve_hooks.h:

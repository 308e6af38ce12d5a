build-clang/src/cli/serve_hooks.o: src/cli/serve_hooks.c \
  src/cli/serve_hooks.h src/core/listener.h src/core/server.h \
  src/core/config.h src/core/control.h src/core/log.h src/delivery/dns.h

src/cli/serve_hooks.h:

src/core/listener.h:

src/core/server.h:

src/core/config.h:

src/core/control.h:

src/core/log.h:

src/delivery/dns.h:

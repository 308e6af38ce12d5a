build-clang/src/core/listener.o: src/core/listener.c src/core/listener.h \
  src/core/server.h src/core/config.h src/core/log.h src/core/util.h

src/core/listener.h:

src/core/server.h:

src/core/config.h:

src/core/log.h:

src/core/util.h:

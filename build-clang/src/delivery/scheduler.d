build-clang/src/delivery/scheduler.o: src/delivery/scheduler.c \
  src/delivery/scheduler.h src/core/config.h src/core/log.h \
  src/core/server.h src/core/util.h src/core/workers.h \
  src/delivery/local.h src/store/queue.h

src/delivery/scheduler.h:

src/core/config.h:

src/core/log.h:

src/core/server.h:

src/core/util.h:

src/core/workers.h:

src/delivery/local.h:

src/store/queue.h:

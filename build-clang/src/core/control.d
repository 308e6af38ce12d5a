build-clang/src/core/control.o: src/core/control.c src/core/control.h \
  src/core/config.h src/core/log.h src/core/server.h src/core/util.h \
  src/delivery/scheduler.h src/store/queue.h src/store/queue_report.h

src/core/control.h:

src/core/config.h:

src/core/log.h:

src/core/server.h:

src/core/util.h:

src/delivery/scheduler.h:

src/store/queue.h:

src/store/queue_report.h:

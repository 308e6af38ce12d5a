build-clang/src/delivery/scheduler_ctl_tmp.o: \
  src/delivery/scheduler_ctl_tmp.c src/delivery/scheduler.h \
  src/core/server.h src/core/util.h src/store/queue.h

src/delivery/scheduler.h:

src/core/server.h:

src/core/util.h:

src/store/queue.h:

build-clang/src/store/queue.o: src/store/queue.c src/store/queue.h \
  src/core/fsutil.h src/core/log.h src/core/util.h

src/store/queue.h:

src/core/fsutil.h:

src/core/log.h:

src/core/util.h:

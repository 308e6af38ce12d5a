build-clang/src/core/fsutil.o: src/core/fsutil.c src/core/fsutil.h \
  src/core/util.h

src/core/fsutil.h:

src/core/util.h:

build-clang/src/core/workers.o: src/core/workers.c src/core/workers.h \
  src/core/util.h

src/core/workers.h:

src/core/util.h:

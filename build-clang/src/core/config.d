build-clang/src/core/config.o: src/core/config.c src/core/config.h \
  src/core/util.h

src/core/config.h:

src/core/util.h:

build-clang/src/delivery/mx.o: src/delivery/mx.c src/delivery/mx.h \
  src/core/util.h

src/delivery/mx.h:

src/core/util.h:

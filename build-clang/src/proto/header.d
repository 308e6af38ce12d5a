build-clang/src/proto/header.o: src/proto/header.c src/proto/header.h \
  src/core/util.h

src/proto/header.h:

src/core/util.h:

build-clang/src/proto/dsn.o: src/proto/dsn.c src/proto/dsn.h \
  src/core/util.h

src/proto/dsn.h:

src/core/util.h:

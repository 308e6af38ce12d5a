build-clang/src/store/users.o: src/store/users.c src/store/users.h \
  src/core/fsutil.h src/core/util.h

src/store/users.h:

src/core/fsutil.h:

src/core/util.h:

build-clang/src/store/maildir.o: src/store/maildir.c src/store/maildir.h \
  src/core/fsutil.h src/core/util.h

src/store/maildir.h:

src/core/fsutil.h:

src/core/util.h:

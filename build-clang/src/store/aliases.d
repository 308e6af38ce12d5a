build-clang/src/store/aliases.o: src/store/aliases.c src/store/aliases.h \
  src/core/config.h src/core/util.h

src/store/aliases.h:

src/core/config.h:

src/core/util.h:

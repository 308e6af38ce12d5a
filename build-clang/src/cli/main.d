build-clang/src/cli/main.o: src/cli/main.c src/cli/cli.h \
  src/core/config.h src/core/util.h

src/cli/cli.h:

src/core/config.h:

src/core/util.h:

build-clang/src/cli/control.o: src/cli/control.c src/cli/cli.h \
  src/core/config.h src/core/control.h src/core/fsutil.h src/core/util.h

src/cli/cli.h:

src/core/config.h:

src/core/control.h:

src/core/fsutil.h:

src/core/util.h:

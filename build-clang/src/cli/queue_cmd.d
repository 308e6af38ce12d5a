build-clang/src/cli/queue_cmd.o: src/cli/queue_cmd.c src/cli/cli.h \
  src/core/config.h src/core/util.h src/store/queue.h \
  src/store/queue_report.h

src/cli/cli.h:

src/core/config.h:

src/core/util.h:

src/store/queue.h:

src/store/queue_report.h:

build-clang/src/store/queue_report.o: src/store/queue_report.c \
  src/store/queue_report.h src/store/queue.h

src/store/queue_report.h:

src/store/queue.h:

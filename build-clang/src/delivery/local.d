build-clang/src/delivery/local.o: src/delivery/local.c \
  src/delivery/local.h src/core/config.h src/core/log.h src/core/util.h \
  src/store/maildir.h src/store/queue.h src/store/users.h

src/delivery/local.h:

src/core/config.h:

src/core/log.h:

src/core/util.h:

src/store/maildir.h:

src/store/queue.h:

src/store/users.h:

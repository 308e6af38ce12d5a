build-clang/src/core/addrcount.o: src/core/addrcount.c \
  src/core/addrcount.h src/core/util.h

src/core/addrcount.h:

src/core/util.h:

build-clang/src/proto/addrlist.o: src/proto/addrlist.c \
  src/proto/addrlist.h

src/proto/addrlist.h:

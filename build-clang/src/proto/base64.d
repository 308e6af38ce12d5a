build-clang/src/proto/base64.o: src/proto/base64.c src/proto/base64.h \
  src/core/util.h

src/proto/base64.h:

src/core/util.h:

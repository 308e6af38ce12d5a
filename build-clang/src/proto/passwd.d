build-clang/src/proto/passwd.o: src/proto/passwd.c src/proto/passwd.h \
  src/core/util.h src/proto/base64.h

src/proto/passwd.h:

src/core/util.h:

src/proto/base64.h:

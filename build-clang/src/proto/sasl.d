build-clang/src/proto/sasl.o: src/proto/sasl.c src/proto/sasl.h \
  src/proto/passwd.h src/core/util.h src/proto/base64.h

src/proto/sasl.h:

src/proto/passwd.h:

src/core/util.h:

src/proto/base64.h:

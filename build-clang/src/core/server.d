build-clang/src/core/server.o: src/core/server.c src/core/server.h

src/core/server.h:

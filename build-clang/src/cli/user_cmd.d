build-clang/src/cli/user_cmd.o: src/cli/user_cmd.c src/cli/cli.h \
  src/core/config.h src/core/util.h src/proto/passwd.h src/store/users.h

src/cli/cli.h:

src/core/config.h:

src/core/util.h:

src/proto/passwd.h:

src/store/users.h:

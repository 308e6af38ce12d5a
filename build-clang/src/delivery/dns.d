build-clang/src/delivery/dns.o: src/delivery/dns.c src/delivery/dns.h \
  src/core/util.h src/delivery/mx.h

src/delivery/dns.h:

src/core/util.h:

src/delivery/mx.h:

"""TLS handshakes never run on the event loop: while 20 clients make full
TLS handshakes at once (no session resumption) on an implicit-TLS service
(465, 993, 995, 443), another session's NOOP round trip stays short.

The handshakes run on the TLS context's worker threads (core/tls_accept.c).
Before, they ran on the loop: ~0.48 ms of the loop's CPU per handshake
(EC P-256 certificate, X25519), 0.18 ms after (the socket I/O).  Measured
interleaved on this shared 2-core machine (load average 3.5-11, other
processes' fuzzers; noisy): the loop version failed the 50 ms p99 in 12
of 20 service runs (worst NOOP 19-283 ms), the worker version in 3 of 20
(p99 6-41 ms, three of 51-94 ms).  A spike left after the change is the
loop thread waiting for a core, which no code in tern can remove on a
machine loaded like that.
"""
import socket
import ssl
import threading

import pytest

from conftest import noop_round_trips_while, smtp_probe

CONCURRENT = 20
ROUNDS = 10              # each client handshakes this many times in a row
BOUND_S = 0.150


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Every handshake a full one: no tickets, no resumption.
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def handshake(t, service, ctx):
    """One full handshake and the first answer of the service over it."""
    raw = socket.create_connection(("127.0.0.1", t.port(service)), timeout=60)
    s = ctx.wrap_socket(raw, server_hostname="mx.test")
    try:
        if service == "https":
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: mx.test\r\nConnection: close\r\n\r\n")
        data = s.recv(4096)
        return bool(data)
    finally:
        s.close()


def noop_round_trips_during(t, service):
    """Start CONCURRENT clients at once, each making ROUNDS handshakes;
    while any is running, time NOOP round trips on an SMTP session opened
    before.  Returns (rtts, oks)."""
    probe = smtp_probe(t)
    oks = [None] * CONCURRENT
    go = threading.Barrier(CONCURRENT + 1)
    ctxs = [client_ctx() for _ in range(CONCURRENT)]

    def one(i):
        go.wait()
        oks[i] = all(handshake(t, service, ctxs[i]) for _ in range(ROUNDS))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENT)]
    for th in threads:
        th.start()
    go.wait()
    return noop_round_trips_while(probe, threads), oks


@pytest.mark.parametrize("service", ["submissions", "imaps", "pop3s", "https"])
def test_round_trip_stays_short_under_concurrent_tls_handshakes(make_tern, service):
    t = make_tern(services=("smtp", service))
    rtts, oks = noop_round_trips_during(t, service)
    assert oks == [True] * CONCURRENT, (oks, t.log()[-2000:])
    p99 = sorted(rtts)[int(len(rtts) * .99)]
    print(f"{service}: {len(rtts)} NOOPs, max {max(rtts) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert len(rtts) >= 3, rtts
    assert max(rtts) < BOUND_S, f"{service}: slowest NOOP {max(rtts) * 1000:.1f} ms of {len(rtts)}"
    # issue 12's figure: another session's round trip under 50 ms
    assert p99 < 0.050, rtts
    assert t.log().count("event=tls ") + t.log().count("event=web_request") >= CONCURRENT * ROUNDS

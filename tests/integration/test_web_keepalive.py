"""Persistent HTTP connections on [https] (RFC 9112 9.3): several
requests on one connection, pipelined ones answered in order, the bounds
still per request, Connection: close honoured, an idle connection closed;
and TLS session resumption for clients that reconnect."""
import re
import socket
import ssl
import time

POLICY = b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n"
METRICS = b"GET /metrics HTTP/1.1\r\nHost: mx.test\r\n\r\n"


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def connect(t, context=None, session=None):
    raw = socket.create_connection(("127.0.0.1", t.port("https")), timeout=10)
    return (context or ctx()).wrap_socket(raw, server_hostname="mx.test", session=session)


def read_reply(s, buf=b""):
    """One reply (head and Content-Length body) and what follows it."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a reply: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    fields = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip() for ln in lines[1:]}
    n = int(fields["content-length"])
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("closed inside a body")
        rest += chunk
    return int(lines[0].split()[1]), fields, rest[:n], rest[n:]


def closed(s, timeout=15):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ssl.SSLError, ConnectionResetError):
        return True


def test_several_requests_on_one_connection(make_tern):
    t = make_tern(services=("smtp", "https"))
    s = connect(t)
    for req in (POLICY, METRICS, POLICY):
        s.sendall(req)
        status, fields, body, rest = read_reply(s)
        assert status == 200 and rest == b""
        assert fields["connection"] == "keep-alive"
    assert body.startswith(b"version: STSv1\r\n")
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: mx.test\r\nConnection: close\r\n\r\n")
    status, fields, body, rest = read_reply(s)
    assert status == 200 and fields["connection"] == "close"
    assert closed(s)
    s.close()
    t.wait_log('path="/metrics" status=200', n=2)
    sessions = re.findall(r"event=web_request session=(\w+) ", t.log())
    assert len(sessions) == 4 and len(set(sessions)) == 1      # one connection


def test_pipelined_requests_answered_in_order(make_tern):
    t = make_tern(services=("smtp", "https"))
    s = connect(t)
    s.sendall(POLICY + METRICS + b"GET /nowhere HTTP/1.1\r\nHost: mx.test\r\n\r\n" + POLICY)
    got, buf = [], b""
    for _ in range(4):
        status, fields, body, buf = read_reply(s, buf)
        got.append((status, body[:14]))
    assert [g[0] for g in got] == [200, 200, 404, 200]
    assert got[0][1] == b"version: STSv1" and got[3][1] == b"version: STSv1"
    assert got[1][1].startswith(b"# HELP tern_")
    s.close()


def test_bounds_hold_per_request(make_tern):
    """A kept connection's second request gets the same limits: a head
    past 8 KiB is 431 and ends the connection."""
    t = make_tern(services=("smtp", "https"))
    s = connect(t)
    s.sendall(POLICY)
    assert read_reply(s)[0] == 200
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: mx.test\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    status, fields, body, rest = read_reply(s)
    assert status == 431 and fields["connection"] == "close"
    assert closed(s)
    s.close()


def test_slow_second_request_gets_408(make_tern):
    t = make_tern(services=("smtp", "https"))
    s = connect(t)
    s.sendall(POLICY)
    assert read_reply(s)[0] == 200
    s.sendall(b"GET /metrics HTTP/1.1\r\n")      # and nothing more
    s.settimeout(30)
    status, fields, body, rest = read_reply(s)
    assert status == 408
    s.close()


def test_idle_connection_closed(make_tern):
    t = make_tern(services=("smtp", "https"))
    s = connect(t)
    s.sendall(POLICY)
    assert read_reply(s)[0] == 200
    t0 = time.monotonic()
    assert closed(s, timeout=30)
    waited = time.monotonic() - t0
    assert 3 < waited < 20, waited                # WEB_IDLE_S is 5
    s.close()
    assert "status=408" not in t.log()


def test_http10_closes_unless_asked(make_tern):
    t = make_tern(services=("smtp", "https"))
    s = connect(t)
    s.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: mta-sts.example.test\r\n\r\n")
    status, fields, body, rest = read_reply(s)
    assert status == 200 and fields["connection"] == "close"
    assert closed(s)
    s.close()


def test_tls_session_resumed(make_tern):
    t = make_tern(services=("smtp", "https"))
    c = ctx()
    c.maximum_version = ssl.TLSVersion.TLSv1_2     # the session is known after the handshake
    s = connect(t, c)
    s.sendall(POLICY.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert read_reply(s)[0] == 200
    sess = s.session
    s.close()
    s = connect(t, c, session=sess)
    assert s.session_reused
    s.close()
    # TLS 1.3: the ticket comes after the handshake, with the first read.
    c13 = ctx()
    c13.minimum_version = ssl.TLSVersion.TLSv1_3
    s = connect(t, c13)
    s.sendall(POLICY.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert read_reply(s)[0] == 200
    sess = s.session
    s.close()
    s = connect(t, c13, session=sess)
    assert s.session_reused
    s.close()

"""The HTTP service: [http] (port-80 role: 301 to https, 404 for ACME
challenges) and [https] (MTA-STS policy, RFC 8461), with tern's bounds on
request heads (431), bodies (413, lingering close), slow clients (408),
malformed requests (400) and methods (405 + Allow)."""
import http.client
import re
import socket
import ssl
import time

import pytest

WEB = ("smtp", "http", "https")


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request(t, service, method, path, host, body=None, headers=None):
    if service == "https":
        c = http.client.HTTPSConnection("127.0.0.1", t.port("https"), timeout=10, context=tls_ctx())
    else:
        c = http.client.HTTPConnection("127.0.0.1", t.port("http"), timeout=10)
    h = {"Host": host}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def raw(t, service, data, timeout=10, chunks=None):
    """Send raw bytes, read the whole answer until the server closes."""
    s = socket.create_connection(("127.0.0.1", t.port(service)), timeout=timeout)
    if service == "https":
        s = tls_ctx().wrap_socket(s, server_hostname="mta-sts.example.test")
    if data:
        s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (ConnectionResetError, ssl.SSLError):
        pass
    s.close()
    return out


def status(resp_bytes):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp_bytes)
    assert m, resp_bytes[:200]
    return int(m.group(1))


@pytest.fixture
def web(make_tern):
    return make_tern(services=WEB)


def test_http_redirects_everything_to_https(web):
    r, _ = request(web, "http", "GET", "/some/where?a=1", "Example.Test")
    assert r.status == 301
    assert r.getheader("Location") == f"https://example.test:{web.port('https')}/some/where?a=1"
    r, body = request(web, "http", "HEAD", "/", "mta-sts.example.test:80")
    assert r.status == 301 and body == b""
    assert r.getheader("Location").startswith("https://mta-sts.example.test:")
    web.wait_log("event=web_request", 2)
    assert 'service=http ip=127.0.0.1 method="GET" host="Example.Test" path="/some/where?a=1" status=301' in web.log()


def test_http_acme_challenge_is_404_and_methods_405(web):
    r, _ = request(web, "http", "GET", "/.well-known/acme-challenge/abc", "mx.test")
    assert r.status == 404
    r, _ = request(web, "http", "POST", "/x", "mx.test", body=b"a=b")
    assert r.status == 405 and r.getheader("Allow") == "GET, HEAD"


def test_http_host_required_and_checked(web):
    assert status(raw(web, "http", b"GET / HTTP/1.1\r\n\r\n")) == 400
    assert status(raw(web, "http", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")) == 400
    assert status(raw(web, "http", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")) == 400
    assert status(raw(web, "http", b"GET / HTTP/1.1\r\nHost: evil\r\n\r\n")) == 421   # not one of ours


@pytest.mark.parametrize("req", [
    b"GET / HTTP/1.1\nHost: x\n\n",                       # bare LF
    b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",       # obs-fold
    b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",                 # double space
    b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",          # absolute-form
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",                 # space before colon
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"\x00\x01\x02\r\n\r\n",
])
def test_malformed_requests_get_400(web, req):
    assert status(raw(web, "http", req)) == 400


def test_http2_version_gets_505(web):
    assert status(raw(web, "http", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")) == 505


def test_oversized_head_gets_431(web):
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n"
    assert status(raw(web, "http", big)) == 431
    # Also when the end of the head never comes.
    assert status(raw(web, "https", b"GET / HTTP/1.1\r\nX: " + b"b" * 9000)) == 431
    # Just under the limit is fine.
    ok = b"GET / HTTP/1.1\r\nHost: mx.test\r\nX-Pad: " + b"a" * 8000 + b"\r\n\r\n"
    assert status(raw(web, "http", ok)) == 301


def parse_reply(out):
    """(status, headers, body) of one complete reply; fails if it is cut."""
    head, sep, body = out.partition(b"\r\n\r\n")
    assert sep, out[:300]
    lines = head.split(b"\r\n")
    headers = dict(l.split(b": ", 1) for l in lines[1:])
    assert len(body) == int(headers[b"Content-Length"]), out[:300]
    return status(out), headers, body


AUTODISCOVER = b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.test\r\n"


@pytest.mark.parametrize("service", ["http", "https"])
def test_oversized_body_gets_the_whole_413_with_lingering_close(web, service):
    # The client sends its whole 200 KiB body although the reply comes
    # after the head: the lingering close (RFC 9112 9.6) reads and drops
    # the rest, so neither the client's sending nor its reading of the
    # reply meets a reset, and the reply ends in an orderly close.
    body = b"x" * 200 * 1024
    s = socket.create_connection(("127.0.0.1", web.port(service)), timeout=10)
    if service == "https":
        s = tls_ctx().wrap_socket(s, server_hostname="mta-sts.example.test")
    s.sendall(AUTODISCOVER + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    out = b""
    while True:
        b = s.recv(65536)          # a reset or a TLS alert would raise here
        if not b:
            break
        out += b
    s.close()
    code, headers, text = parse_reply(out)
    assert code == 413 and headers[b"Connection"] == b"close"
    assert text == b"413 Content Too Large\r\n"


def test_body_limit_is_64_kib(web):
    at = raw(web, "https", AUTODISCOVER + b"Content-Length: 65536\r\n\r\n" + b"<" * 65536)
    assert status(at) != 413
    over = raw(web, "https", AUTODISCOVER + b"Content-Length: 65537\r\n\r\n" + b"<" * 65537)
    assert status(over) == 413


def test_request_line_over_8_kib_gets_431(web):
    line = b"GET /" + b"a" * 8300 + b" HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n"
    assert status(raw(web, "http", line)) == 431
    assert status(raw(web, "https", line)) == 431


def test_error_replies_survive_a_client_that_half_closes(web):
    # Request, then FIN at once (no close_notify): the reply must arrive
    # whole, and over TLS without an alert after it, however the client's
    # EOF and our lingering close interleave.  A race: many rounds.
    cases = [(b"GARBAGE\r\n\r\n", 400),
             (AUTODISCOVER + b"Content-Length: 100000\r\n\r\nabc", 413),
             (b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n", None)]
    for service in ("https", "http"):
        for _ in range(60 if service == "https" else 20):
            for req, code in cases:
                s = socket.create_connection(("127.0.0.1", web.port(service)), timeout=10)
                if service == "https":
                    s = tls_ctx().wrap_socket(s, server_hostname="mta-sts.example.test")
                s.sendall(req)
                socket.socket.shutdown(s, socket.SHUT_WR)   # a bare FIN, even under TLS
                out = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    out += b
                s.close()
                want = code or (200 if service == "https" else 301)
                assert parse_reply(out)[0] == want, (service, req)


def test_lingering_is_bounded(web):
    # A client that never stops sending after its 413 is cut off once the
    # linger time is over (about 2 s), not served forever.
    s = socket.create_connection(("127.0.0.1", web.port("http")), timeout=10)
    s.sendall(AUTODISCOVER + b"Content-Length: 100000000\r\n\r\n")
    out = b""
    while b"\r\n\r\n" not in out:
        out += s.recv(4096)
    assert status(out) == 413
    t0 = time.time()
    with pytest.raises(OSError):
        while time.time() - t0 < 20:
            s.sendall(b"x" * 4096)
            time.sleep(0.01)
    assert 1 < time.time() - t0 < 10
    s.close()


def test_slow_client_gets_408(web):
    # Too slow with the head, and with the body: both within the deadline.
    head = socket.create_connection(("127.0.0.1", web.port("http")), timeout=20)
    head.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")   # and never the rest
    body = socket.create_connection(("127.0.0.1", web.port("https")), timeout=20)
    body = tls_ctx().wrap_socket(body, server_hostname="autodiscover.example.test")
    body.sendall(AUTODISCOVER + b"Content-Length: 100\r\n\r\n<Autodiscover")
    t0 = time.time()
    for s in (head, body):
        out = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            out += b
        assert parse_reply(out)[0] == 408
        s.close()
    assert 5 < time.time() - t0 < 19


def test_unknown_paths_are_404(web):
    for path in ["/", "/index.html", "/.well-known/mta-sts.txt/", "/.well-known/", "/../etc/passwd",
                 "/.well-known/mta-sts.txt%00"]:
        r, _ = request(web, "https", "GET", path, "mta-sts.example.test")
        assert r.status == 404, path


MTA_STS_LINE = re.compile(rb"^([A-Za-z0-9_]+): *([\x21-\x7e]+)\r\n")


def parse_policy(body):
    """RFC 8461 3.2 strictly: every line "key: value" ending in CRLF."""
    fields = []
    rest = body
    while rest:
        m = MTA_STS_LINE.match(rest)
        assert m, rest
        fields.append((m.group(1).decode(), m.group(2).decode()))
        rest = rest[m.end():]
    return fields


def test_mta_sts_policy_default(web):
    r, body = request(web, "https", "GET", "/.well-known/mta-sts.txt", "mta-sts.example.test")
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/plain"
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert parse_policy(body) == [("version", "STSv1"), ("mode", "testing"), ("mx", "mx.test"),
                                  ("max_age", "604800")]
    r, body = request(web, "https", "HEAD", "/.well-known/mta-sts.txt", "MTA-STS.localhost.")
    assert r.status == 200 and body == b""


def test_mta_sts_policy_configured(make_tern):
    t = make_tern(services=WEB, config={"mta_sts": {"mode": "enforce", "mx": "mx1.example.test, *.example.test",
                                                    "max_age": "86400"}})
    r, body = request(t, "https", "GET", "/.well-known/mta-sts.txt", "mta-sts.example.test")
    assert parse_policy(body) == [("version", "STSv1"), ("mode", "enforce"), ("mx", "mx1.example.test"),
                                  ("mx", "*.example.test"), ("max_age", "86400")]


def test_mta_sts_wrong_host_or_method(web):
    for host in ["mta-sts.other.test", "example.test", "mta-sts.", "xmta-sts.example.test", "127.0.0.1"]:
        r, _ = request(web, "https", "GET", "/.well-known/mta-sts.txt", host)
        assert r.status == 421, host      # Misdirected: not a host of this route
    r, _ = request(web, "https", "POST", "/.well-known/mta-sts.txt", "mta-sts.example.test", body=b"")
    assert r.status == 405 and r.getheader("Allow") == "GET, HEAD"
    # The policy is an https resource only (RFC 8461 3.3).
    r, _ = request(web, "http", "GET", "/.well-known/mta-sts.txt", "mta-sts.example.test")
    assert r.status == 301


def test_bad_mta_sts_mode_is_a_config_error(make_tern):
    t = make_tern(start=False, services=WEB, config={"mta_sts": {"mode": "strict"}})
    r = t.cli("check-config")
    assert r.returncode == 1 and "[mta_sts] mode must be none, testing or enforce" in r.stderr


# ---- autoconfig (Thunderbird) and autodiscover (Outlook) ---------------------

import xml.etree.ElementTree as ET

MAIL = ("smtp", "submission", "submissions", "pop3", "pop3s", "http", "https")


@pytest.fixture
def mailweb(make_tern):
    return make_tern(services=MAIL, hostname="mx.example.test")


def servers(root):
    out = []
    for el in root.iter():
        if el.tag in ("incomingServer", "outgoingServer"):
            out.append((el.tag, el.get("type"), el.findtext("hostname"), int(el.findtext("port")),
                        el.findtext("socketType"), el.findtext("authentication"), el.findtext("username")))
    return out


def test_autoconfig_lists_the_configured_listeners(mailweb):
    t = mailweb
    for path in ["/.well-known/autoconfig/mail/config-v1.1.xml",
                 "/mail/config-v1.1.xml?emailaddress=alice%40example.test"]:
        r, body = request(t, "https", "GET", path, "autoconfig.example.test")
        assert r.status == 200, path
        assert r.getheader("Content-Type").startswith("application/xml")
        root = ET.fromstring(body)
        assert root.tag == "clientConfig" and root.get("version") == "1.1"
        prov = root.find("emailProvider")
        assert prov.get("id") == "example.test" and prov.findtext("domain") == "example.test"
        h = "mx.example.test"
        u = "%EMAILADDRESS%"
        pw = "password-cleartext"
        assert servers(root) == [
            ("incomingServer", "pop3", h, t.port("pop3s"), "SSL", pw, u),
            ("incomingServer", "pop3", h, t.port("pop3"), "STARTTLS", pw, u),
            ("outgoingServer", "smtp", h, t.port("submissions"), "SSL", pw, u),
            ("outgoingServer", "smtp", h, t.port("submission"), "STARTTLS", pw, u),
        ]


def test_autoconfig_only_what_runs(make_tern):
    t = make_tern(services=("smtp", "submissions", "https"))
    r, body = request(t, "https", "GET", "/mail/config-v1.1.xml", "autoconfig.localhost")
    assert [(s[1], s[3], s[4]) for s in servers(ET.fromstring(body))] == \
        [("smtp", t.port("submissions"), "SSL")]


def test_autoconfig_refuses_other_domains(mailweb):
    for host, path, code in [("autoconfig.other.test", "/mail/config-v1.1.xml", 421),
                             ("example.test", "/mail/config-v1.1.xml", 421),
                             ("autoconfig.example.test", "/mail/config-v1.1.xml?emailaddress=a%40other.test", 404),
                             ("mta-sts.example.test", "/.well-known/autoconfig/mail/config-v1.1.xml", 421)]:
        r, _ = request(mailweb, "https", "GET", path, host)
        assert r.status == code, (host, path)
    r, _ = request(mailweb, "https", "POST", "/mail/config-v1.1.xml", "autoconfig.example.test", body=b"")
    assert r.status == 405 and r.getheader("Allow") == "GET, HEAD"


def test_autoconfig_domain_is_xml_escaped(make_tern):
    # A domain cannot hold "<" in a Host, but the address's domain decides
    # the provider: it must come back escaped, never as markup.
    t = make_tern(services=("https",), domains="example.test a&b.test")
    r, body = request(t, "https", "GET", "/mail/config-v1.1.xml?emailaddress=x%40a%26b.test",
                      "autoconfig.example.test")
    assert r.status == 200
    assert b"a&amp;b.test" in body
    assert ET.fromstring(body).find("emailProvider").findtext("domain") == "a&b.test"


AD_REQ = ('<?xml version="1.0" encoding="utf-8"?>\r\n'
          '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
          '<Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>'
          'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a'
          '</AcceptableResponseSchema></Request></Autodiscover>')
NS = {"r": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
      "a": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}


def test_autodiscover(mailweb):
    t = mailweb
    r, body = request(t, "https", "POST", "/autodiscover/autodiscover.xml", "autodiscover.example.test",
                      body=AD_REQ.format("alice@example.test").encode(),
                      headers={"Content-Type": "text/xml"})
    assert r.status == 200
    root = ET.fromstring(body)
    acct = root.find("a:Response/a:Account", NS)
    assert acct.findtext("a:AccountType", namespaces=NS) == "email"
    assert acct.findtext("a:Action", namespaces=NS) == "settings"
    protos = [(p.findtext("a:Type", namespaces=NS), p.findtext("a:Server", namespaces=NS),
               int(p.findtext("a:Port", namespaces=NS)), p.findtext("a:LoginName", namespaces=NS),
               p.findtext("a:SSL", namespaces=NS), p.findtext("a:Encryption", namespaces=NS))
              for p in acct.findall("a:Protocol", NS)]
    h, a = "mx.example.test", "alice@example.test"
    assert protos == [("POP3", h, t.port("pop3s"), a, "on", "SSL"),
                      ("POP3", h, t.port("pop3"), a, "on", "TLS"),
                      ("SMTP", h, t.port("submissions"), a, "on", "SSL"),
                      ("SMTP", h, t.port("submission"), a, "on", "TLS")]


def test_autodiscover_refusals(mailweb):
    t = mailweb
    path = "/autodiscover/autodiscover.xml"
    r, _ = request(t, "https", "POST", path, "autodiscover.example.test",
                   body=AD_REQ.format("alice@other.test").encode())
    assert r.status == 404
    r, _ = request(t, "https", "POST", path, "autodiscover.example.test", body=b"<x/>")
    assert r.status == 400
    r, _ = request(t, "https", "GET", path, "autodiscover.example.test")
    assert r.status == 405 and r.getheader("Allow") == "POST"
    # A chunked body is refused: Content-Length only.
    out = raw(t, "https", b"POST " + path.encode() + b" HTTP/1.1\r\nHost: autodiscover.example.test\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status(out) == 411


def test_https_slow_client_gets_408_and_stalled_handshake_is_dropped(web):
    s = socket.create_connection(("127.0.0.1", web.port("https")), timeout=20)
    s = tls_ctx().wrap_socket(s, server_hostname="mta-sts.example.test")
    s.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n")
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
    assert status(out) == 408
    s.close()
    # No handshake at all: closed at the request deadline, with no reply.
    s = socket.create_connection(("127.0.0.1", web.port("https")), timeout=25)
    t0 = time.time()
    assert s.recv(4096) == b""
    assert time.time() - t0 < 15
    s.close()
    web.wait_log('event=web_tls_failed')
    assert 'error="handshake timeout"' in web.log()


def test_https_client_hanging_up_mid_handshake_is_a_tls_failure(web):
    # The fixture's port probe (connect, close) is one already.
    web.wait_log("event=web_tls_failed")
    n = web.log().count("event=web_tls_failed")
    s = socket.create_connection(("127.0.0.1", web.port("https")), timeout=10)
    s.sendall(b"\x16\x03\x01\x00")        # the start of a ClientHello, then EOF
    s.close()
    web.wait_log("event=web_tls_failed", n + 1)
    # A client that completes its exchange is not.
    assert status(raw(web, "https", b"GET / HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n")) == 404
    web.wait_log("event=web_request")
    assert web.log().count("event=web_tls_failed") == n + 1


# ---- every route with right and wrong Host, path and method ------------------

AD_BODY = AD_REQ.format("alice@example.test").encode()
# service, method, path, the status on a right host, right hosts, wrong hosts
ROUTES = [
    ("http", "GET", "/.well-known/acme-challenge/tok", 404,
     ["mx.example.test", "example.test", "mta-sts.example.test", "autoconfig.example.test",
      "autodiscover.example.test"],
     ["other.test", "mta-sts.other.test", "127.0.0.1", "www.example.test"]),
    ("http", "GET", "/any/where", 301,
     ["mx.example.test", "example.test", "mta-sts.example.test", "autoconfig.example.test",
      "autodiscover.example.test"],
     ["other.test", "autoconfig.other.test", "127.0.0.1", "www.example.test"]),
    ("https", "GET", "/metrics", 200,
     ["mx.example.test", "127.0.0.1", "[::1]"],
     ["example.test", "mta-sts.example.test", "autoconfig.example.test", "other.test"]),
    ("https", "GET", "/.well-known/mta-sts.txt", 200,
     ["mta-sts.example.test", "mta-sts.example.org"],
     ["example.test", "mx.example.test", "autoconfig.example.test", "mta-sts.other.test", "127.0.0.1"]),
    ("https", "GET", "/.well-known/autoconfig/mail/config-v1.1.xml", 200,
     ["autoconfig.example.test", "example.test", "autoconfig.example.org"],
     ["mx.example.test", "mta-sts.example.test", "autodiscover.example.test", "autoconfig.other.test",
      "other.test", "127.0.0.1"]),
    ("https", "GET", "/mail/config-v1.1.xml", 200,
     ["autoconfig.example.test", "autoconfig.example.org"],
     ["example.test", "mx.example.test", "mta-sts.example.test", "autodiscover.example.test",
      "autoconfig.other.test", "127.0.0.1"]),
    ("https", "POST", "/autodiscover/autodiscover.xml", 200,
     ["autodiscover.example.test", "example.test", "autodiscover.example.org"],
     ["mx.example.test", "autoconfig.example.test", "mta-sts.example.test", "autodiscover.other.test",
      "other.test", "127.0.0.1"]),
    ("https", "POST", "/Autodiscover/Autodiscover.xml", 200,
     ["autodiscover.example.test", "example.test"],
     ["mx.example.test", "autoconfig.example.test", "autodiscover.other.test"]),
]


@pytest.fixture(scope="module")
def routeweb(tmp_path_factory):
    from conftest import Tern
    t = Tern(tmp_path_factory.mktemp("routes"), services=MAIL, hostname="mx.example.test",
             domains="example.test example.org")
    t.start()
    yield t
    t.stop()


@pytest.mark.parametrize("svc,method,path,ok,right,wrong", ROUTES, ids=[f"{r[0]}:{r[2]}" for r in ROUTES])
def test_route_hosts(routeweb, svc, method, path, ok, right, wrong):
    """Each route answers for its own hosts only: 421 Misdirected Request
    on any other (RFC 9110 15.5.20), with the right method or not."""
    body = AD_BODY if method == "POST" else None
    other = "DELETE"
    for host in right:
        r, data = request(routeweb, svc, method, path, host, body=body)
        assert r.status == ok, (host, r.status, data[:200])
        r, _ = request(routeweb, svc, other, path, host)
        assert r.status == 405 and r.getheader("Allow"), host
    for host in wrong:
        r, data = request(routeweb, svc, method, path, host, body=body)
        assert r.status == 421, (host, r.status, data[:200])
        assert b"autoconfig" not in data.lower() and b"STSv1" not in data
        r, _ = request(routeweb, svc, other, path, host)
        assert r.status == 421, host
    # A Host with a port is the same host; a path next to the route's is 404.
    r, _ = request(routeweb, svc, method, path, right[0] + ":1234", body=body)
    assert r.status == ok
    if svc == "https":   # on port 80 every other path is the redirect's
        for host in right[:1] + wrong[:1]:
            r, _ = request(routeweb, svc, method, path + "x", host, body=body)
            assert r.status == 404, (host, path)


def test_http10_without_host_asks_the_server(routeweb):
    """No Host (HTTP/1.0): the request is for the [server] hostname."""
    out = raw(routeweb, "https", b"GET /metrics HTTP/1.0\r\n\r\n")
    assert status(out) == 200
    out = raw(routeweb, "https", b"GET /.well-known/mta-sts.txt HTTP/1.0\r\n\r\n")
    assert status(out) == 421
    out = raw(routeweb, "http", b"GET /x HTTP/1.0\r\n\r\n")
    assert status(out) == 301 and b"Location: https://mx.example.test:" in out

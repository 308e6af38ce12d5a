"""/metrics on [https]: the Prometheus text format, parsed with
prometheus_client's own parser; each counter moves by exactly what the
test did; refused (403) to addresses outside [relay] trusted_networks."""
import http.client
import os
import smtplib
import socket
import ssl

from prometheus_client.parser import text_string_to_metric_families

from authutil import b64, client_tls
from conftest import free_port


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def scrape(t):
    c = http.client.HTTPSConnection("127.0.0.1", t.port("https"), timeout=10, context=ctx())
    c.request("GET", "/metrics", headers={"Host": "mx.test"})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r, body


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def k(name, **labels):
    return (name, tuple(sorted(labels.items())))


def test_metrics_counters_move_exactly(make_tern):
    t = make_tern(services=("smtp", "submission", "https"))
    r, text = scrape(t)
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    m0 = samples(text)
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["tern_connections"] == "counter"
    assert types["tern_queue_messages"] == "gauge"
    assert types["tern_delivery_delay_seconds"] == "histogram"

    # One SMTP session: a bad MAIL, a refused RCPT, one message.
    with t.smtp() as s:
        s.ehlo("client.test")
        assert s.docmd("MAIL FROM:<not an address>")[0] == 501
        s.mail("sender@remote.test")
        assert s.rcpt("nobody@example.test")[0] == 550
        assert s.rcpt("alice@example.test")[0] == 250
        assert s.data(b"Subject: m\r\n\r\nhello\r\n")[0] == 250
    t.wait_log("status=sent")
    # One submission session with STARTTLS and a wrong password.
    s = smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=10)
    s.starttls(context=client_tls())
    s.ehlo("client.test")
    assert s.docmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong"))[0] == 535
    s.quit()
    t.wait_log("event=auth_failed")

    r, text = scrape(t)
    m1 = samples(text)
    d = {key: m1[key] - m0.get(key, 0) for key in m1}
    assert d[k("tern_connections_total", service="smtp")] == 1
    assert d[k("tern_connections_total", service="submission")] == 1
    assert d[k("tern_connections_total", service="https")] == 1    # this scrape
    assert d[k("tern_connections_total", service="pop3")] == 0
    assert d[k("tern_messages_received_total")] == 1
    assert d[k("tern_messages_delivered_total")] == 1
    assert d[k("tern_messages_deferred_total")] == 0
    assert d[k("tern_messages_bounced_total")] == 0
    assert d[k("tern_rejected_total", command="mail")] == 1
    assert d[k("tern_rejected_total", command="rcpt")] == 1
    assert d[k("tern_rejected_total", command="data")] == 0
    assert d[k("tern_auth_failures_total")] == 1
    assert d[k("tern_tls_handshakes_total", result="ok")] == 2      # STARTTLS + this scrape
    assert d[k("tern_delivery_delay_seconds_count")] == 1
    assert d[k("tern_delivery_delay_seconds_bucket", le="+Inf")] == 1
    assert d[k("tern_delivery_delay_seconds_bucket", le="5")] == 1
    assert m1[k("tern_queue_messages")] == 0
    assert m1[k("tern_open_sessions")] == 1                            # this scrape


def test_metrics_imap_pop3_connections(make_tern):
    """Every service's connections are counted under its section name,
    and the implicit-TLS handshakes with them (before, IMAP's were not)."""
    import imaplib
    import poplib

    t = make_tern(services=("smtp", "imap", "imaps", "pop3s", "https"))
    m0 = samples(scrape(t)[1])
    imaplib.IMAP4("127.0.0.1", t.port("imap"), timeout=10).logout()
    imaplib.IMAP4_SSL("127.0.0.1", t.port("imaps"), ssl_context=ctx(), timeout=10).logout()
    poplib.POP3_SSL("127.0.0.1", t.port("pop3s"), context=ctx(), timeout=10).quit()
    t.wait_log("service=pop3s")
    m1 = samples(scrape(t)[1])
    d = {key: m1[key] - m0.get(key, 0) for key in m1}
    assert d[k("tern_connections_total", service="imap")] == 1
    assert d[k("tern_connections_total", service="imaps")] == 1
    assert d[k("tern_connections_total", service="pop3s")] == 1
    assert d[k("tern_connections_total", service="https")] == 1
    assert d[k("tern_tls_handshakes_total", result="ok")] == 3      # imaps, pop3s, the scrape


def test_metrics_rejected_at_end_of_data(make_tern):
    """A message refused after its data (too big) counts as one DATA
    rejection, and as no message received."""
    t = make_tern(services=("smtp", "https"), config={"smtp": {"max_message_size": "1K"}})
    m0 = samples(scrape(t)[1])
    with t.smtp() as s:
        s.ehlo("client.test")
        s.mail("sender@remote.test")
        assert s.rcpt("alice@example.test")[0] == 250
        assert s.data(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 60)[0] == 552
    t.wait_log("event=disconnect")
    m1 = samples(scrape(t)[1])
    d = {key: m1[key] - m0.get(key, 0) for key in m1}
    assert d[k("tern_rejected_total", command="data")] == 1
    assert d[k("tern_rejected_total", command="mail")] == 0
    assert d[k("tern_rejected_total", command="rcpt")] == 0
    assert d[k("tern_messages_received_total")] == 0


def submit(t, rcpt, subject="q"):
    with t.smtp() as s:
        s.ehlo("client.test")
        assert s.mail("sender@example.test")[0] == 250
        assert s.rcpt(rcpt)[0] == 250
        code, msg = s.data(f"Subject: {subject}\r\n\r\n{subject}\r\n".encode())
        assert code == 250, msg
        return msg.decode().rsplit(" ", 1)[1]


def control(t, request):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(os.path.join(t.state, "run", "control.sock"))
        s.sendall(request.encode() + b"\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data.decode()


def queue_length(t):
    return samples(scrape(t)[1])[k("tern_queue_messages")]


def test_metrics_queue_length_moves(make_tern):
    """The gauge the queue keeps: one up per message queued (deferred and
    held ones stay counted), one down when it is delivered or deleted,
    unchanged by mail delivered straight to its mailboxes, and seeded by
    the start-up scan."""
    from aiosmtpd.controller import Controller

    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append(envelope.rcpt_tos)
            return "250 2.0.0 ok"

    port = free_port()
    t = make_tern(services=("smtp", "https"),
                  config={"relay": {"smarthost": f"[127.0.0.1]:{port}"}, "queue": {"retry": "1h"}})
    m0 = samples(scrape(t)[1])
    assert m0[k("tern_queue_messages")] == 0
    a = submit(t, "x@remote.test", "a")                     # smarthost down: deferred
    t.wait_log(f'queue={a} to="x@remote.test" relay=[smarthost] status=deferred')
    assert queue_length(t) == 1
    b = submit(t, "y@remote.test", "b")
    t.wait_log("status=deferred", n=2)
    assert queue_length(t) == 2
    assert t.cli("queue", "hold", b).returncode == 0       # held: still queued
    t.wait_log(f"event=held queue={b}")
    assert queue_length(t) == 2
    submit(t, "alice@example.test", "local")                # straight into the Maildir
    t.wait_messages("alice@example.test", 1)
    assert queue_length(t) == 2

    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        assert t.cli("queue", "flush").returncode == 0
        t.wait_log(f"event=removed queue={a}")              # delivered
        assert got == [["x@remote.test"]]
        m1 = samples(scrape(t)[1])
        assert m1[k("tern_queue_messages")] == 1
        d = {key: m1[key] - m0.get(key, 0) for key in m1}
        assert d[k("tern_messages_received_total")] == 3
        assert d[k("tern_messages_deferred_total")] == 2          # a and b, once each
        assert d[k("tern_messages_delivered_total")] == 2         # the local one, then a
        assert d[k("tern_messages_bounced_total")] == 0
        assert d[k("tern_delivery_delay_seconds_count")] == 2
    finally:
        ctl.stop()

    t.restart()                                             # seeded by the scan
    assert queue_length(t) == 1
    assert t.cli("queue", "delete", b).returncode == 0
    t.wait_log(f"event=deleted queue={b}")
    assert queue_length(t) == 0


def test_metrics_bounce(make_tern):
    """A recipient the next hop refuses: bounced once, and the notice
    to the local sender queued, delivered and gone from the queue."""
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            return "550 5.1.1 no such user"

    port = free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        t = make_tern(services=("smtp", "https"), config={"relay": {"smarthost": f"[127.0.0.1]:{port}"}})
        m0 = samples(scrape(t)[1])
        with t.smtp() as s:
            s.sendmail("alice@example.test", ["nobody@remote.test"], b"Subject: b\r\n\r\nb\r\n")
        t.wait_log("status=bounced")
        t.wait_messages("alice@example.test", 1)              # the failure notice
        t.wait_queue_empty()
        m1 = samples(scrape(t)[1])
    finally:
        ctl.stop()
    d = {key: m1[key] - m0.get(key, 0) for key in m1}
    assert d[k("tern_messages_bounced_total")] == 1
    assert d[k("tern_messages_deferred_total")] == 0
    assert d[k("tern_messages_delivered_total")] == 1         # the notice
    assert d[k("tern_messages_received_total")] == 1
    assert m1[k("tern_queue_messages")] == 0


def test_metrics_scans_no_directory(make_tern):
    """Scrapes read the gauge: no open or listing of queue/msg per request
    (before, every /metrics listed and sorted the whole queue on the loop)."""
    import pytest

    import syscalls

    why = syscalls.strace_usable()
    if why:
        pytest.skip(why)
    t = make_tern(services=("smtp", "https"))
    submit(t, "alice@example.test")

    def scans(events):
        return [e for e in events
                if (e.name == "openat" and any(p.endswith("queue/msg") for p in e.paths()))
                or (e.name == "getdents64" and (e.fd_path(0) or "").endswith("queue/msg"))]

    with syscalls.Recorder(t.proc.pid, os.path.join(t.base, "scrape.strace"), trace="openat,getdents64") as rec:
        for _ in range(3):
            r, text = scrape(t)
            assert r.status == 200
    assert scans(rec.events()) == []
    # The same trace does see a listing: the control socket's "list".
    with syscalls.Recorder(t.proc.pid, os.path.join(t.base, "list.strace"), trace="openat,getdents64") as rec:
        control(t, "list")
    assert scans(rec.events()) != []


def test_metrics_refused_outside_trusted_networks(make_tern):
    t = make_tern(services=("smtp", "https"), config={"relay": {"trusted_networks": "10.0.0.0/8"}})
    r, body = scrape(t)
    assert r.status == 403
    assert "tern_" not in body
    t.wait_log('path="/metrics" status=403')

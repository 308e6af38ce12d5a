"""/metrics on [https]: the Prometheus text format, parsed with
prometheus_client's own parser; each counter moves by exactly what the
test did; refused (403) to addresses outside [relay] trusted_networks."""
import http.client
import smtplib
import ssl

from prometheus_client.parser import text_string_to_metric_families

from authutil import b64, client_tls


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


def test_metrics_queue_length(make_tern):
    # Remote mail to an unreachable MX stays queued.
    t = make_tern(services=("smtp", "https"), config={"dns": {"servers": "127.0.0.1:1"}})
    with t.smtp() as s:
        s.sendmail("a@example.test", ["x@remote.test"], b"Subject: q\r\n\r\nq\r\n")
    t.wait_log("event=queued")
    r, text = scrape(t)
    assert samples(text)[k("tern_queue_messages")] == 1


def test_metrics_refused_outside_trusted_networks(make_tern):
    t = make_tern(services=("smtp", "https"), config={"relay": {"trusted_networks": "10.0.0.0/8"}})
    r, body = scrape(t)
    assert r.status == 403
    assert "tern_" not in body
    t.wait_log('path="/metrics" status=403')

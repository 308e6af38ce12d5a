"""Outbound delivery when the peer says no before the transaction: STARTTLS
that breaks or is refused (plain-text fallback unless TLS is required),
5xx greetings from every MX (a bounce) or from only some (a deferral),
and who sends the "relayed" DSN (RFC 3461 4.2).

Uses the dnsmasq and scripted receivers of test_outbound.py.
"""
from test_outbound import dsns, net, send, status_fields, wait_for  # noqa: F401  (net is a fixture)


# ---- STARTTLS fallback ----------------------------------------------------------

def test_broken_tls_handshake_falls_back_to_plaintext(net):
    net.dns("--mx-host=tlsfb.test,mx.tlsfb.test,10", "--host-record=mx.tlsfb.test,127.0.5.11")
    r = net.receiver("127.0.5.11", ext=("PIPELINING", "STARTTLS"), starttls="220 2.0.0 go ahead")
    t = net.tern()
    send(t, ["bob@tlsfb.test"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    first, second = r.transcripts[0], r.transcripts[1]
    assert "STARTTLS" in first
    assert "STARTTLS" not in second and second[0].startswith("EHLO")
    assert r.connections == 2
    log = t.log()
    assert "event=tls_fallback" in log and "action=reconnect_plaintext" in log
    assert "relay=mx.tlsfb.test[127.0.5.11]" in log and "status=sent" in log
    assert t.messages("alice@example.test") == []


def test_broken_tls_handshake_remembered_for_the_address(net):
    """The next message to an address whose handshake broke goes without
    STARTTLS at once: one connection, not a broken one and another."""
    net.dns("--mx-host=tlsmemo.test,mx.tlsmemo.test,10", "--host-record=mx.tlsmemo.test,127.0.5.16")
    r = net.receiver("127.0.5.16", ext=("PIPELINING", "STARTTLS"), starttls="220 2.0.0 go ahead")
    t = net.tern(config={"delivery": {"reuse_idle": "0"}})   # no connection kept for the second
    send(t, ["bob@tlsmemo.test"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    send(t, ["carol@tlsmemo.test"])
    wait_for(lambda: len(r.messages) == 2, t=t)
    assert r.connections == 3
    assert "STARTTLS" in r.transcripts[0] and "STARTTLS" not in r.transcripts[2]
    log = t.log()
    assert log.count("event=tls_fallback") == 1
    assert log.count("starttls=skipped reason=recent_handshake_failure") == 1


def test_broken_tls_handshake_defers_when_tls_required(net):
    net.dns("--mx-host=tlsreq.test,mx.tlsreq.test,10", "--host-record=mx.tlsreq.test,127.0.5.12")
    r = net.receiver("127.0.5.12", ext=("PIPELINING", "STARTTLS"), starttls="220 2.0.0 go ahead")
    t = net.tern(config={"delivery": {"tls_required": "tlsreq.test"}, "queue": {"retry": "1h"}})
    send(t, ["bob@tlsreq.test"])
    wait_for(lambda: "status=deferred" in t.log(), t=t)
    assert r.messages == []
    assert r.connections == 1
    assert all("STARTTLS" in tr for tr in r.transcripts)
    assert "event=tls_fallback" not in t.log()


def test_refused_starttls_goes_on_in_plaintext(net):
    net.dns("--mx-host=tlsno.test,mx.tlsno.test,10", "--host-record=mx.tlsno.test,127.0.5.13")
    r = net.receiver("127.0.5.13", ext=("PIPELINING", "STARTTLS"), starttls="454 4.7.0 TLS not available")
    t = net.tern()
    send(t, ["bob@tlsno.test"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    assert r.connections == 1
    tr = r.transcripts[0]
    assert tr.index("STARTTLS") < [i for i, l in enumerate(tr) if l.startswith("MAIL")][0]
    assert "event=tls_fallback" in t.log() and "TLS not available" in t.log()


def test_refused_starttls_defers_when_tls_required(net):
    net.dns("--mx-host=tlsno2.test,mx.tlsno2.test,10", "--host-record=mx.tlsno2.test,127.0.5.14")
    r = net.receiver("127.0.5.14", ext=("PIPELINING", "STARTTLS"), starttls="554 5.7.0 no TLS here")
    t = net.tern(config={"delivery": {"tls_required": "tlsno2.test"}, "queue": {"retry": "1h"}})
    send(t, ["bob@tlsno2.test"])
    wait_for(lambda: "status=deferred" in t.log(), t=t)
    assert r.messages == [] and t.messages("alice@example.test") == []


# ---- 5xx before the transaction: every host, or only some -------------------------

def test_5xx_greeting_from_every_mx_bounces(net):
    net.dns("--mx-host=gr.test,mx1.gr.test,10", "--mx-host=gr.test,mx2.gr.test,20",
            "--host-record=mx1.gr.test,127.0.5.21", "--host-record=mx2.gr.test,127.0.5.22")
    a = net.receiver("127.0.5.21", greeting="554 5.7.1 mx1 does not want you")
    b = net.receiver("127.0.5.22", greeting="554 5.7.1 mx2 does not want you either")
    t = net.tern()
    send(t, ["bob@gr.test"])
    (d,) = dsns(t)
    f = status_fields(d)[0]
    assert f["Action"] == "failed" and f["Status"] == "5.7.1"
    assert "554 5.7.1 mx2 does not want you either" in f["Diagnostic-Code"]
    assert f["Remote-MTA"] == "dns; mx2.gr.test"
    assert a.connections == 1 and b.connections == 1       # both were tried, in order
    assert "status=bounced" in t.log()


def test_5xx_ehlo_from_the_only_host_bounces(net):
    net.dns("--mx-host=eh.test,mx.eh.test,10", "--host-record=mx.eh.test,127.0.5.23")
    r = net.receiver("127.0.5.23", ehlo="550 5.7.1 not you")
    t = net.tern()
    send(t, ["bob@eh.test"])
    (d,) = dsns(t)
    f = status_fields(d)[0]
    assert f["Action"] == "failed" and f["Status"] == "5.7.1"
    assert "550 5.7.1 not you" in f["Diagnostic-Code"]
    assert r.messages == []


def test_5xx_greeting_without_enhanced_code_bounces_5_0_0(net):
    net.dns("--mx-host=gr0.test,mx.gr0.test,10", "--host-record=mx.gr0.test,127.0.5.24")
    net.receiver("127.0.5.24", greeting="554 no SMTP service here")
    t = net.tern()
    send(t, ["bob@gr0.test"])
    (d,) = dsns(t)
    f = status_fields(d)[0]
    assert f["Status"] == "5.0.0" and "554 no SMTP service here" in f["Diagnostic-Code"]


def test_5xx_greeting_and_unreachable_mx_defers(net):
    net.dns("--mx-host=grm.test,mx1.grm.test,10", "--mx-host=grm.test,mx2.grm.test,20",
            "--host-record=mx1.grm.test,127.0.5.31", "--host-record=mx2.grm.test,127.0.5.32")
    a = net.receiver("127.0.5.31", greeting="554 5.7.1 go away")   # nothing listens on .32
    t = net.tern(config={"queue": {"retry": "1h"}})
    send(t, ["bob@grm.test"])
    wait_for(lambda: "status=deferred" in t.log(), t=t)
    assert a.connections == 1
    # saved as deferred (retry in an hour): its attempt and notices are over
    t.wait_queue_states("deferred")
    assert "status=bounced" not in t.log() and t.messages("alice@example.test") == []


def test_5xx_greeting_and_4xx_greeting_defers(net):
    net.dns("--mx-host=grt.test,mx.grt.test,10", "--host-record=mx.grt.test,127.0.5.33",
            "--host-record=mx.grt.test,127.0.5.34")
    net.receiver("127.0.5.33", greeting="554 5.7.1 go away")
    b = net.receiver("127.0.5.34", greeting="421 4.3.2 busy")
    t = net.tern(config={"queue": {"retry": "1h"}})
    send(t, ["bob@grt.test"])
    wait_for(lambda: "status=deferred" in t.log(), t=t)
    assert b.connections == 1
    # saved as deferred (retry in an hour): its attempt and notices are over
    t.wait_queue_states("deferred")
    assert "status=bounced" not in t.log() and t.messages("alice@example.test") == []


# ---- DSN: "relayed" only when the next hop cannot notify --------------------------

def test_next_hop_with_dsn_takes_over_success_notice(net):
    net.dns("--mx-host=dsn.test,mx.dsn.test,10", "--host-record=mx.dsn.test,127.0.5.41")
    r = net.receiver("127.0.5.41", ext=("PIPELINING", "DSN"))
    t = net.tern()
    send(t, ["bob@dsn.test"], rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    assert "NOTIFY=SUCCESS,FAILURE" in r.messages[0]["rcpts"][0]
    # notices are queued before the message leaves the queue
    wait_for(lambda: "event=removed" in t.log(), t=t)
    assert "event=notify_passed" in t.log()
    assert "event=dsn " not in t.log()
    assert t.messages("alice@example.test") == []


def test_next_hop_without_dsn_gets_relayed_notice(net):
    net.dns("--mx-host=nodsn.test,mx.nodsn.test,10", "--host-record=mx.nodsn.test,127.0.5.42")
    r = net.receiver("127.0.5.42", ext=("PIPELINING",))
    t = net.tern()
    send(t, ["bob@nodsn.test"], rcpt_options=["NOTIFY=SUCCESS"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    assert "NOTIFY" not in r.messages[0]["rcpts"][0]
    (d,) = dsns(t)
    f = status_fields(d)[0]
    assert f["Action"] == "relayed" and f["Status"].startswith("2.")
    assert f["Final-Recipient"] == "rfc822; bob@nodsn.test"
    assert "event=notify_passed" not in t.log()


def test_next_hop_with_dsn_but_no_notify_asked_sends_nothing(net):
    net.dns("--mx-host=dsn2.test,mx.dsn2.test,10", "--host-record=mx.dsn2.test,127.0.5.43")
    r = net.receiver("127.0.5.43", ext=("PIPELINING", "DSN"))
    t = net.tern()
    send(t, ["bob@dsn2.test"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    assert "NOTIFY" not in r.messages[0]["rcpts"][0]
    # notices are queued before the message leaves the queue: none was
    wait_for(lambda: "event=removed" in t.log(), t=t)
    assert "event=dsn " not in t.log()
    assert t.messages("alice@example.test") == []

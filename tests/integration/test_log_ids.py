"""Logs are an interface: every line about a message carries its queue id
as queue=, every line of a session (inbound or outbound) its session id
as session=, and an id is never logged under another key (id=, qid=,
arg=), so that `grep queue=ID` and `grep session=ID` find everything.

One run exercises most events: a message for a local user, a relay whose
peer refuses STARTTLS, one whose TLS handshake breaks (reconnect in plain
text), a 5xx recipient (bounce DSN to the sender), a 4xx one (deferred),
then hold, release, show and delete through the control socket, and a
clean stop.  Uses the dnsmasq and scripted receivers of test_outbound.py.
"""
import re

from test_outbound import net, wait_for  # noqa: F401  (net is a fixture)

HEX_ID = re.compile(r"[0-9A-Fa-f]{16}")
PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
ID_KEYS = {"session", "queue", "notice"}

# Events about one message: queue= is required.
MESSAGE_EVENTS = {"queued", "delivery", "dsn", "dsn_error", "removed", "expired", "deleted",
                  "held", "released", "connect_out", "notify_passed"}
# Events of a session, inbound or outbound: session= is required.
SESSION_EVENTS = {"connect", "disconnect", "ptr", "state", "reject", "tls", "tls_failed", "auth",
                  "auth_failed", "auth_blocked", "login", "timeout", "too_many_errors", "etrn",
                  "queued", "client_state", "client_error", "connect_out", "tls_fallback"}
# Events of the whole process; every other line needs session= or queue=.
GLOBAL_EVENTS = {"listen", "listen_skipped", "accept_error", "reload", "start", "stop",
                 "shutdown", "shutdown_forced", "privileges_dropped", "control_listening",
                 "control", "control_timeout", "control_refused", "control_error",
                 "queue_recovered", "queue_recover", "queue_error", "flush", "tls_selfsigned",
                 "tls_loaded", "tls_reloaded", "tls_reload_failed", "users_bad_line",
                 "users_bad_secret", "aliases_unreadable", "aliases_bad_line", "config_error",
                 "dkim_keys_loaded", "dkim_key_error"}


def pairs(line):
    """The key=value pairs after the timestamp, in order."""
    return PAIR.findall(line.split(" ", 1)[1]) if " " in line else []


def check_line(line):
    """The reasons this log line breaks the id rules (empty when it keeps them)."""
    kv = pairs(line)
    keys = {k for k, _ in kv}
    event = dict(kv).get("event", "")
    bad = [f"id under {k}=" for k, v in kv if k not in ID_KEYS and HEX_ID.fullmatch(v.strip('"'))]
    if event in MESSAGE_EVENTS and "queue" not in keys:
        bad.append("no queue=")
    if event in SESSION_EVENTS and "session" not in keys:
        bad.append("no session=")
    if event not in GLOBAL_EVENTS and not keys & {"session", "queue"}:
        bad.append("neither session= nor queue=")
    if event == "control" and dict(kv).get("verb") in ("show", "hold", "release", "delete") \
            and dict(kv).get("result") == "ok" and "queue" not in keys:
        bad.append("control on a message without queue=")
    return bad


def test_check_line_rules():
    """The checker itself: each rule fires on a line that breaks it."""
    ts = "2026-01-01T00:00:00.000Z "
    assert check_line(ts + "event=delivery queue=000661D2C1759080 to=\"a b\" status=sent") == []
    assert check_line(ts + "event=queue_error op=write id=000661D2C1759080 error=\"x\"") \
        == ["id under id="]
    assert check_line(ts + "event=removed qid=000661D2C1759080") \
        == ["id under qid=", "no queue=", "neither session= nor queue="]
    assert check_line(ts + "event=tls_fallback queue=000661D2C1759080 relay=x") == ["no session="]
    assert check_line(ts + "event=control verb=hold arg=000661D2C1759080 result=ok") \
        == ["id under arg=", "control on a message without queue="]
    assert check_line(ts + "event=control verb=delete arg=\"000661D2C1759080\" result=ok") \
        == ["id under arg=", "control on a message without queue="]
    assert check_line(ts + "event=something_new detail=x") == ["neither session= nor queue="]


def test_every_line_carries_its_id(net, tmp_path):
    net.dns("--mx-host=relay.test,mx.relay.test,10", "--host-record=mx.relay.test,127.0.6.1",
            "--mx-host=broken.test,mx.broken.test,10", "--host-record=mx.broken.test,127.0.6.2",
            "--mx-host=bounce.test,mx.bounce.test,10", "--host-record=mx.bounce.test,127.0.6.3",
            "--mx-host=defer.test,mx.defer.test,10", "--host-record=mx.defer.test,127.0.6.4")
    relay = net.receiver("127.0.6.1", ext=("PIPELINING", "STARTTLS"),
                         starttls="454 4.7.0 TLS not available")
    broken = net.receiver("127.0.6.2", ext=("PIPELINING", "STARTTLS"), starttls="220 2.0.0 go ahead")
    net.receiver("127.0.6.3", rcpt={"x@bounce.test": "550 5.1.1 no such user"})
    net.receiver("127.0.6.4", rcpt={"d@defer.test": "451 4.3.0 try later"})
    t = net.tern(config={"queue": {"retry": "1h"}})

    with t.smtp() as c:
        c.ehlo()
        assert c.mail("alice@example.test")[0] == 250
        for r in ("bob@example.test", "r@relay.test", "b@broken.test", "x@bounce.test",
                  "d@defer.test"):
            assert c.rcpt(r)[0] == 250
        code, msg = c.data(b"Subject: ids\r\n\r\nhello\r\n")
        assert code == 250, msg
    qid = msg.decode().rsplit(" ", 1)[1]
    assert HEX_ID.fullmatch(qid), msg

    wait_for(lambda: relay.messages and broken.messages, t=t)
    t.wait_messages("bob@example.test", 1)
    t.wait_messages("alice@example.test", 1)          # the bounce for x@bounce.test
    t.wait_log("status=deferred")
    for verb, event in (("hold", "held"), ("release", "released"), ("show", None),
                        ("delete", "deleted")):
        r = t.cli("queue", verb, qid)
        assert r.returncode == 0, r.stderr
        if event:
            t.wait_log(f"event={event} queue={qid}")
    assert t.stop() == 0

    lines = [l for l in t.log().splitlines() if " event=" in l]
    broken_lines = [(l, why) for l in lines for why in [check_line(l)] if why]
    assert broken_lines == [], "\n".join(f"{why}: {l}" for l, why in broken_lines)

    seen = {dict(pairs(l)).get("event") for l in lines}
    wanted = {"connect", "queued", "disconnect", "delivery", "dsn", "connect_out", "client_state",
              "tls_fallback", "control", "held", "released", "deleted", "stop"}
    assert wanted <= seen, sorted(wanted - seen)
    # Both kinds of STARTTLS fallback were logged, the reconnect one for the message.
    fallbacks = [l for l in lines if "event=tls_fallback" in l]
    assert any("action=plaintext" in l for l in fallbacks), fallbacks
    assert any("action=reconnect_plaintext" in l and f"queue={qid}" in l for l in fallbacks), fallbacks
    # The notice is a message of its own, with its own id on its lines.
    notice = re.search(r"event=dsn queue=" + qid + r" notice=(\w+)", t.log())
    assert notice and f"queue={notice.group(1)}" in t.log().split(notice.group(0), 1)[1]

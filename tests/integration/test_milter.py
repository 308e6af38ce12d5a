"""The milter client against a scripted filter (miltersim.py): the exact
command sequence and macros, every reply at every step, the header fields
a filter adds, quarantine, two filters in order, the protocol steps a
filter skips, and every way a filter can fail with each default_action."""
import os
import re
import smtplib
import socket
import time

import pytest

from authutil import submission_data
from conftest import free_port, recv_reply, recv_until
import miltersim as ms

USERS = {f"{u}@example.test": f"{u}pw" for u in ("alice", "bob", "carol")}
MSG = b"Subject: hello\r\nFrom: alice@example.test\r\n\r\nbody line\r\n"


@pytest.fixture
def sim():
    s = ms.MilterSim()
    yield s
    s.stop()


def milter_tern(make_tern, servers, action="tempfail", timeout="30s", **cfg):
    config = {"milter": {"servers": ", ".join(servers), "default_action": action, "timeout": timeout}}
    for k, v in cfg.items():
        config.setdefault(k, {}).update(v)
    return make_tern(config=config, users=USERS)


def send(t, body=MSG, rcpts=("bob@example.test",)):
    """The reply to the end of DATA: (code, text)."""
    with t.smtp() as c:
        c.ehlo()
        assert c.mail("alice@example.test")[0] == 250
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        try:
            return c.data(body)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error


def queue_id(text):
    return re.search(rb"queued as (\S+)", text).group(1).decode()


def test_sequence_and_macros(make_tern, sim):
    t = milter_tern(make_tern, [sim.spec])
    code, text = send(t, rcpts=("bob@example.test", "carol@example.test"))
    assert code == 250, text
    qid = queue_id(text)
    (s,) = sim.wait_sessions(1)
    assert s.commands == ["O", "C", "H", "M", "R", "R", "T"] + ["L"] * len(s.headers()) + ["N", "B", "E", "Q"]
    version, actions, protocol = __import__("struct").unpack(">III", s.data("O")[0])
    assert version == 6 and actions & ms.ADDHDRS and protocol & ms.NR_HDR
    c = s.macros["C"]
    assert c["j"] == "mx.test" and c["{daemon_name}"] == "smtp" and c["{client_addr}"] == "127.0.0.1"
    assert int(c["{client_port}"]) > 0 and c["{client_name}"] == "unknown"
    conn = s.data("C")[0]
    assert conn.startswith(b"[127.0.0.1]\0" + b"4") and conn.endswith(b"127.0.0.1\0")
    assert ms.strings(s.data("H")[0]) == ["client.test"]
    assert s.macros["M"]["{mail_addr}"] == "alice@example.test"
    assert "{auth_authen}" not in s.macros["M"]
    assert ms.strings(s.data("M")[0]) == ["<alice@example.test>"]
    assert [ms.strings(d) for d in s.data("R")] == [["<bob@example.test>"], ["<carol@example.test>"]]
    assert s.macros["R"]["{rcpt_addr}"] == "carol@example.test"
    assert s.macros["E"]["i"] == qid and s.macros["T"]["i"] == qid
    hdrs = s.headers()
    assert hdrs[0][0] == "Received" and "\n\t" in hdrs[0][1]
    assert ("Subject", "hello") in hdrs and ("From", "alice@example.test") in hdrs
    assert s.body() == b"body line\r\n"
    t.wait_messages("bob@example.test", 1)
    t.wait_messages("carol@example.test", 1)


REPLIES = {
    "reject": (ms.REJECT, 550, b"5.7.1"),
    "tempfail": (ms.TEMPFAIL, 451, b"4.7.1"),
    "replycode": (ms.replycode("554 5.7.0 Go away, spammer"), 554, b"5.7.0 Go away, spammer"),
    "discard": (ms.DISCARD, 250, b"queued as"),
    "accept": (ms.ACCEPT, 250, b"queued as"),
}


def session(t, body=MSG, rcpt="bob@example.test"):
    """One SMTP session, raw: [(step, reply)] up to the first refusal
    (C: the greeting, H, M, R, T: DATA, E: the end of the message)."""
    c = t.connect()
    out = [("C", c.greeting)]
    try:
        if not c.greeting.startswith("220"):
            return out
        for step, line in (("H", "EHLO client.test"), ("M", "MAIL FROM:<alice@example.test>"),
                           ("R", f"RCPT TO:<{rcpt}>"), ("T", "DATA")):
            c.sendall(line.encode() + b"\r\n")
            out.append((step, recv_reply(c)))
            if out[-1][1][0] in "45":
                return out
        c.sendall(body + b".\r\n")
        out.append(("E", recv_reply(c)))
        c.sendall(b"QUIT\r\n")
        recv_reply(c)
        return out
    finally:
        c.close()


AT_STEP = {
    # reply: (code at CONNECT, at HELO/MAIL/RCPT, the text)
    "reject": (ms.REJECT, "554 5.7.1", "550 5.7.1"),
    "tempfail": (ms.TEMPFAIL, "421 4.7.1", "451 4.7.1"),
    "replycode": (ms.replycode("554 5.7.0 Go away, spammer"), "554 5.7.0 Go away, spammer",
                  "554 5.7.0 Go away, spammer"),
}


def test_every_reply_at_every_step(make_tern, sim):
    """Each reply at each command that has one.  At CONNECT, HELO, MAIL
    and RCPT the filter's refusal is that command's reply, at once; at
    DATA, a header field, EOH, a body chunk and the end of the message,
    the message's.  Only accept and continue deliver; discard answers 250
    and drops the message; accept at CONNECT or HELO ends the filter's
    part in the session, at MAIL or RCPT in the message."""
    t = milter_tern(make_tern, [sim.spec])
    delivered = 0
    for step in "CHMR":
        for name, (reply, at_connect, later) in AT_STEP.items():
            sim.script = {step: [reply]}
            replies = session(t)
            want = at_connect if step == "C" else later
            assert replies[-1][0] == step and replies[-1][1].startswith(want), (step, name, replies)
        sim.script = {step: [ms.ACCEPT]}
        replies = session(t)
        assert replies[-1][0] == "E" and replies[-1][1].startswith("250"), (step, replies)
        delivered += 1
        t.wait_messages("bob@example.test", delivered)
        later_cmds = {"C": "HMRTLNBE", "H": "MRTLNBE", "M": "RTLNBE", "R": "TLNBE"}[step]
        assert not set(sim.sessions[-1].commands) & set(later_cmds), (step, sim.sessions[-1].commands)
        sim.script = {step: [ms.DISCARD]}
        replies = session(t)
        assert replies[-1][0] == "E" and replies[-1][1].startswith("250"), (step, replies)
        if step in "CH":   # no message to drop yet: it goes on
            delivered += 1
            t.wait_messages("bob@example.test", delivered)
        else:
            t.wait_log("event=discarded session=", n=1 + "MR".index(step))
    # a refused connection: only QUIT
    sim.script = {"C": [ms.REJECT]}
    c = t.connect()
    assert c.greeting.startswith("554 5.7.1")
    c.sendall(b"EHLO client.test\r\n")
    assert recv_reply(c).startswith("503 5.7.1")
    c.sendall(b"QUIT\r\n")
    assert recv_reply(c).startswith("221")
    c.close()
    for step in "TLNBE":
        for name, (reply, want, text) in REPLIES.items():
            sim.script = {step: [reply]}
            code, msg = send(t)
            assert (code, step, name) == (want, step, name), msg
            assert text in msg, (step, name, msg)
            assert step in sim.wait_sessions(1)[-1].commands
            if name == "accept":
                delivered += 1
                t.wait_messages("bob@example.test", delivered)
            if name == "discard":
                t.wait_log("event=discarded session=", n=3 + "TLNBE".index(step))
    sim.script = {}
    assert send(t)[0] == 250
    t.wait_messages("bob@example.test", delivered + 1)
    assert len(t.messages("bob@example.test")) == delivered + 1   # none refused or discarded arrived
    log = t.log()
    assert "step=rcpt verdict=replycode" in log and "step=eom verdict=replycode" in log
    assert "step=connect verdict=reject" in log


DATA_VERDICTS = {
    # the filter's reply to SMFIC_DATA: the DATA command's reply
    "reject": (ms.REJECT, "550 5.7.1"),
    "tempfail": (ms.TEMPFAIL, "451 4.7.1"),
    "replycode": (ms.replycode("554 5.7.0 No data from you"), "554 5.7.0 No data from you"),
}


def test_data_verdict_is_the_data_reply(make_tern, sim):
    """The filters are asked at DATA itself (SMFIC_DATA), as Postfix does:
    a refusal is the reply to DATA, before any 354 and before a line of
    the message is read, and the transaction is over (a second DATA gets
    503); nothing is queued.  With BDAT it is the reply to the first
    chunk, whose octets are read and dropped, and the chunks pipelined
    after it are refused as the transaction failed (RFC 3030 2)."""
    t = milter_tern(make_tern, [sim.spec], action="reject", timeout="1s")
    n = 0
    for name, (reply, want) in DATA_VERDICTS.items():
        sim.script = {"T": [reply]}
        replies = session(t)
        assert replies[-1][0] == "T" and replies[-1][1].startswith(want), (name, replies)
        assert "354" not in replies[-1][1]
        n += 1
        s = sim.wait_sessions(n)[n - 1]
        assert s.commands[-2:] == ["T", "A"] or s.commands[-3:] == ["T", "A", "Q"], (name, s.commands)
        assert s.macros["T"]["i"]
        # a BDAT first chunk: its reply; the next chunk finds no transaction
        c = t.connect()
        for line in ("EHLO client.test", "MAIL FROM:<alice@example.test>", "RCPT TO:<bob@example.test>"):
            c.sendall(line.encode() + b"\r\n")
            assert recv_reply(c).startswith("250"), line
        part1, part2 = b"Subject: chunked\r\n\r\nfirst ", b"second\r\n"
        c.sendall(b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2 + b"NOOP\r\n")
        got = recv_until(c, 3)
        r1, r2, r3 = got.split("\r\n")[:3]
        assert r1.startswith(want) and r2.startswith("503 5.5.1") and r3.startswith("250"), (name, got)
        c.sendall(b"QUIT\r\n")
        recv_reply(c)
        c.close()
        n += 1
        s = sim.wait_sessions(n)[n - 1]
        assert "L" not in s.commands and "B" not in s.commands, (name, s.commands)
    # a filter that fails at DATA: default_action there; a DISCARD at
    # DATA: 250 at the end, nothing delivered; ACCEPT: it is shown no more
    sim.script = {}
    sim.fail = ("T", "stall")
    replies = session(t)
    assert replies[-1][0] == "T" and replies[-1][1].startswith("550 5.7.1"), replies
    t.wait_log("reason=timeout")
    sim.fail = None
    sim.script = {"T": [ms.DISCARD]}
    replies = session(t)
    assert replies[-1][0] == "E" and replies[-1][1].startswith("250"), replies
    t.wait_log("event=discarded session=")
    sim.script = {"T": [ms.ACCEPT]}
    replies = session(t)
    assert replies[-1][0] == "E" and replies[-1][1].startswith("250"), replies
    t.wait_messages("bob@example.test", 1)
    assert "L" not in sim.wait_sessions(n + 3)[n + 2].commands
    assert len(t.messages("bob@example.test")) == 1
    log = t.log()
    assert "step=data verdict=reject" in log and "step=data verdict=replycode" in log
    assert "step=data verdict=default_reject" in log


def test_rcpt_refused_at_rcpt(make_tern, sim):
    """A filter that rejects one recipient refuses that RCPT: the others
    go on, the message reaches them only, and the filter was shown only
    the recipients tern accepted."""
    t = milter_tern(make_tern, [sim.spec])

    sim.script = {}
    sim.reject_rcpt = "<carol@example.test>"
    c = t.connect()
    for line in ("EHLO client.test", "MAIL FROM:<alice@example.test>"):
        c.sendall(line.encode() + b"\r\n")
        assert recv_reply(c).startswith("250")
    # pipelined: each RCPT gets its own verdict, in order
    c.sendall(b"RCPT TO:<bob@example.test>\r\nRCPT TO:<carol@example.test>\r\nRCPT TO:<nobody@example.test>\r\n")
    data = b""
    while data.count(b"\r\n") < 3:
        data += c.recv(4096)
    r1, r2, r3 = data.decode().split("\r\n")[:3]
    assert r1.startswith("250") and r2.startswith("550 5.7.1") and r3.startswith("550 5.1.1"), (r1, r2, r3)
    c.sendall(b"DATA\r\n")
    assert recv_reply(c).startswith("354")
    c.sendall(MSG + b".\r\n")
    assert recv_reply(c).startswith("250")
    c.close()
    t.wait_messages("bob@example.test", 1)
    assert t.messages("carol@example.test") == []
    (s,) = sim.wait_sessions(1)
    assert [ms.strings(d) for d in s.data("R")] == [["<bob@example.test>"], ["<carol@example.test>"]]
    assert "Received" in dict(s.headers()) and b"for <bob@example.test>" in t.messages("bob@example.test")[0]


def test_long_field_not_shown(make_tern, sim):
    """A header field over 64 KiB (folded lines) is kept in the message
    but not shown to the filters, and that is logged; the fields after it
    are shown."""
    t = milter_tern(make_tern, [sim.spec])
    long_field = b"X-Long: a" + b"\r\n\t" + b"\r\n\t".join([b"b" * 900] * 80)
    body = b"Subject: s\r\n" + long_field + b"\r\nX-After: 1\r\n\r\nbody\r\n"
    assert send(t, body=body)[0] == 250
    (m,) = t.wait_messages("bob@example.test", 1)
    assert m.count(b"b" * 900) == 80
    names = [h[0] for h in sim.wait_sessions(1)[0].headers()]
    assert "X-Long" not in names and "X-After" in names and "Subject" in names
    assert 'event=milter_field_skipped' in t.log() and 'field="X-Long"' in t.log()


def test_replycode_checked(make_tern, sim):
    """A reply text a client must not be given is the filter's failure."""
    t = milter_tern(make_tern, [sim.spec], action="reject")
    for bad in ("250 2.0.0 fine", "550 4.7.1 mixed", "550 a\r\nb", "55"):
        sim.script = {"E": [ms.replycode(bad)]}
        code, msg = send(t)
        assert code == 550 and b"5.7.1" in msg, (bad, msg)
    assert t.log().count("reason=bad_replycode") == 4
    sim.script = {"E": [ms.replycode("421")]}
    code, msg = send(t)
    assert code == 421 and b"4.7.1" in msg
    # libmilter's multi-line reply (smfi_setmlreply) goes out as it is
    sim.script = {"E": [ms.replycode("550-5.7.1 line one\r\n550 5.7.1 line two")]}
    code, msg = send(t)
    assert (code, msg) == (550, b"5.7.1 line one\n5.7.1 line two")


def test_added_fields_and_quarantine(make_tern, sim):
    t = milter_tern(make_tern, [sim.spec])
    sim.script = {"E": [ms.PROGRESS, ms.add_header("X-Spam", "No, score=0.1"),
                        ms.ins_header(1, "X-Filtered", "by\n\tsim"), ms.CONTINUE]}
    code, _ = send(t)
    assert code == 250
    (m,) = t.wait_messages("bob@example.test", 1)
    # added: at the end of the header section; inserted at 1: after the
    # first field the filter was shown (Received:)
    rec = received_of(m)
    assert m == (b"Return-Path: <alice@example.test>\nDelivered-To: bob@example.test\n" + rec +
                 b"X-Filtered: by\n\tsim\nSubject: hello\nFrom: alice@example.test\n"
                 b"X-Spam: No, score=0.1\n\nbody line\n"), m
    assert "event=milter_header" in t.log()

    sim.script = {"E": [ms.quarantine("looks odd"), ms.add_header("X-Q", "1"), ms.ACCEPT]}
    code, text = send(t)
    assert code == 250
    qid = queue_id(text)
    t.wait_log("event=milter_quarantine")
    show = t.cli("queue", "show", qid).stdout
    assert "held: yes" in show, show
    # the queued line gives the held message's real size, the one its
    # queue file holds (it said size=0)
    size = int(re.search(r"^size: (\d+)$", show, re.M).group(1))
    assert size > 0, show
    assert re.search(rf"event=queued session=\S+ queue={qid} .*size={size} path=queue ", t.log()), t.log()
    assert len(t.messages("bob@example.test")) == 1
    listing = t.cli("queue", "list").stdout
    assert re.search(rf"^{qid} +held +bob@example.test", listing, re.M), listing
    # the scheduler passes it by, even when told to run the queue
    assert t.cli("queue", "flush").returncode == 0
    assert t.cli("queue", "release", qid).returncode == 0
    (_, m2) = t.wait_messages("bob@example.test", 2)
    assert b"X-Q: 1" in m2
    assert t.cli("queue", "list").stdout == ""


def test_held_message_stays_held(make_tern, sim):
    """A quarantined message is passed by the scheduler however long it
    waits: a twin of it that is not held (same recipients: a local one,
    delivered at once, and a remote one whose MX does not answer) is
    retried and, past max_age, bounced; the held one meanwhile gets
    neither, even when the queue is flushed, and stays held across a
    restart.  `tern queue release` then delivers it."""
    from conftest import Dnsmasq
    dns = Dnsmasq(["--local=/test/", "--mx-host=far.test,mx.far.test,10",
                   "--host-record=mx.far.test,127.0.0.93"])
    try:
        t = milter_tern(make_tern, [sim.spec], dns={"servers": f"127.0.0.1:{dns.port}"},
                        delivery={"remote_port": str(free_port()), "client_timeout": "2s"},
                        queue={"retry": "1s", "max_age": "3s"})
        rcpts = ("bob@example.test", "x@far.test")
        sim.script = {"E": [ms.quarantine("held by the test"), ms.CONTINUE]}
        code, text = send(t, rcpts=rcpts)
        assert code == 250, text
        held = queue_id(text)
        t.wait_log(f"event=milter_quarantine session=")
        sim.script = {}
        code, text = send(t, rcpts=rcpts)
        assert code == 250, text
        twin = queue_id(text)
        t.wait_messages("bob@example.test", 1)
        # the twin is tried again and again, then bounced (its DSN to alice)
        t.wait_log(f"status=deferred", n=2)
        assert t.cli("queue", "flush").returncode == 0
        t.wait_log("event=flush ")
        t.wait_log(f"event=expired queue={twin}")
        t.wait_log(f"event=removed queue={twin}")
        t.wait_messages("alice@example.test", 1)
        log = t.log()
        acted = [l for l in log.splitlines() if f"queue={held}" in l and
                 re.search(r"event=(delivery|expired|removed|dsn|connect_out) ", l)]
        assert acted == [], acted
        assert len(t.messages("bob@example.test")) == 1
        assert re.search(rf"^{held} +held +", t.cli("queue", "list").stdout, re.M)
        # a restart: recovered, still held, still not delivered
        t.restart()
        t.wait_log("event=queue_recovered messages=1")
        assert "held: yes" in t.cli("queue", "show", held).stdout
        assert t.cli("queue", "flush").returncode == 0
        t.wait_log("event=flush ", n=2)
        assert len(t.messages("bob@example.test")) == 1
        assert t.cli("queue", "release", held).returncode == 0
        t.wait_log(f"event=released queue={held}")
        (_, m2) = t.wait_messages("bob@example.test", 2)
        assert held.encode() in m2
    finally:
        dns.stop()


def received_of(m):
    """The Received: field tern put on top (with its folds)."""
    return re.search(rb"^Received: .*?\n(?=[^ \t])", m, re.M | re.S).group(0)


ALL = ms.ALL_ACTIONS


def test_header_changes_byte_by_byte(make_tern):
    """CHGHEADER changes the index-th field of a name (0 counts as 1) or,
    with an empty value, deletes it; INSHEADER puts a field at an index
    among the fields shown; ADDHEADER at the end; a change of a field
    that is not there adds it.  The delivered file has exactly that."""
    sim = ms.MilterSim(actions=ALL)
    try:
        t = milter_tern(make_tern, [sim.spec])
        body = (b"Subject: hello\r\nFrom: alice@example.test\r\nTo: bob@example.test\r\n"
                b"X-Old: a\r\nX-Old: b\r\n\r\nbody line\r\n")
        sim.script = {"E": [ms.chg_header(2, "X-Old", "B2"), ms.chg_header(0, "subject", "[SPAM] hello"),
                            ms.chg_header(1, "To", ""), ms.ins_header(0, "X-First", "1"),
                            ms.ins_header(2, "X-Mid", "m"), ms.add_header("X-Last", "z"),
                            ms.chg_header(1, "X-New", "n\r\n\tfolded"), ms.ins_header(99, "X-Late", "l"),
                            ms.CONTINUE]}
        assert send(t, body=body)[0] == 250
        (m,) = t.wait_messages("bob@example.test", 1)
        rec = received_of(m)
        assert m == (b"Return-Path: <alice@example.test>\nDelivered-To: bob@example.test\n"
                     b"X-First: 1\n" + rec + b"subject: [SPAM] hello\nX-Mid: m\nFrom: alice@example.test\n"
                     b"X-Old: a\nX-Old: B2\nX-Late: l\nX-Last: z\nX-New: n\n\tfolded\n\nbody line\n"), m
        log = t.log()
        assert "op=change field=\"X-Old\" index=2" in log and "op=delete field=\"To\"" in log
        assert "op=insert field=\"X-First\" index=0" in log
    finally:
        sim.stop()


def test_replaced_body_streamed(make_tern):
    """REPLBODY in several chunks (CRLF) replaces the body; the original,
    large enough to be held in a file, was shown whole to the filter."""
    sim = ms.MilterSim(actions=ALL)
    try:
        t = milter_tern(make_tern, [sim.spec])
        orig = b"Subject: big\r\n\r\n" + b"".join(b"line %06d %s\r\n" % (i, b"o" * 60) for i in range(6000))
        new = [b"new first line\r\nsecond", b" half\r", b"\nthird\r\n", b"x" * 70000 + b"\r\n"]
        sim.script = {"E": [ms.repl_body(c) for c in new] + [ms.add_header("X-Body", "replaced"), ms.CONTINUE]}
        code, text = send(t, body=orig)
        assert code == 250, text
        (m,) = t.wait_messages("bob@example.test", 1)
        want_body = b"".join(new).replace(b"\r\n", b"\n")
        assert m == (b"Return-Path: <alice@example.test>\nDelivered-To: bob@example.test\n" + received_of(m) +
                     b"Subject: big\nX-Body: replaced\n\n" + want_body), m[:400]
        (s,) = sim.wait_sessions(1)
        assert s.body() == orig.split(b"\r\n\r\n", 1)[1]
        assert f"event=milter_replbody" in t.log() and f"size={len(want_body)}" in t.log()
    finally:
        sim.stop()


def test_envelope_changes_in_the_queue_file(make_tern):
    """ADDRCPT, ADDRCPT_PAR, DELRCPT and CHGFROM change the envelope the
    queue file holds (quarantined, so that it stays to be looked at); on
    release the copies go to the new recipients, with the new sender as
    Return-Path."""
    sim = ms.MilterSim(actions=ALL)
    try:
        t = milter_tern(make_tern, [sim.spec])
        sim.script = {"E": [ms.del_rcpt("<bob@example.test>"), ms.add_rcpt("<carol@example.test>"),
                            ms.add_rcpt_par("<alice@example.test>", "NOTIFY=NEVER"),
                            ms.add_rcpt("<carol@example.test>"), ms.add_rcpt("<nobody@example.test>"),
                            ms.chg_from("<bounces@example.test>", "SIZE=10"), ms.quarantine("check"),
                            ms.CONTINUE]}
        code, text = send(t)
        assert code == 250, text
        qid = queue_id(text)
        import json
        env = json.loads(t.cli("queue", "show", qid, "--json").stdout)
        assert env["sender"] == "bounces@example.test" and env["held"] is True
        got = {r["recipient"]: r["state"] for r in env["recipients"]}
        assert got == {"bob@example.test": "delivered", "carol@example.test": "pending",
                       "alice@example.test": "pending"}, got
        log = t.log()
        assert "result=duplicate" in log and 'to="nobody@example.test" result=unknown' in log
        assert 'event=milter_chgfrom' in log and 'from="bounces@example.test"' in log
        assert t.cli("queue", "release", qid).returncode == 0
        (m,) = t.wait_messages("carol@example.test", 1)
        (a,) = t.wait_messages("alice@example.test", 1)
        assert m.startswith(b"Return-Path: <bounces@example.test>\nDelivered-To: carol@example.test\n")
        assert m.split(b"\n", 2)[2] == a.split(b"\n", 2)[2]
        assert m.endswith(b"Subject: hello\nFrom: alice@example.test\n\nbody line\n")
        assert t.messages("bob@example.test") == []

        # not held: straight into the mailboxes, the new sender on top
        sim.script = {"E": [ms.chg_from("<other@example.test>"), ms.add_rcpt("<carol@example.test>"),
                            ms.CONTINUE]}
        code, text = send(t)
        assert code == 250, text
        (b,) = t.wait_messages("bob@example.test", 1)
        assert b.startswith(b"Return-Path: <other@example.test>\nDelivered-To: bob@example.test\n")
        c2 = t.wait_messages("carol@example.test", 2)
        assert any(x.startswith(b"Return-Path: <other@example.test>\nDelivered-To: carol") for x in c2)
        assert t.cli("queue", "list").stdout == ""
    finally:
        sim.stop()


def test_progress_resets_the_timeout(make_tern):
    """PROGRESS starts the timeout again: a filter that takes three times
    the timeout at the end of message, saying so, is waited for."""
    sim = ms.MilterSim(actions=ALL)
    try:
        t = milter_tern(make_tern, [sim.spec], timeout="1s")
        sim.script = {"E": [0.7, ms.PROGRESS, 0.7, ms.PROGRESS, 0.7, ms.PROGRESS, 0.7, ms.add_header("X-Slow", "1"),
                            ms.CONTINUE]}
        code, text = send(t)
        assert code == 250, text
        (m,) = t.wait_messages("bob@example.test", 1)
        assert b"\nX-Slow: 1\n\n" in m
        assert "reason=timeout" not in t.log()
        # without PROGRESS the same wait is a timeout
        sim.script = {"E": [1.5, ms.CONTINUE]}
        code, text = send(t)
        assert code == 451, text
        t.wait_log("reason=timeout")
    finally:
        sim.stop()


def test_deleted_recipients(make_tern):
    """DELRCPT: the recipient gets no copy and no notice; the others do.
    All-local mail is in the mailboxes before the 250, so the counts hold
    at once."""
    sim = ms.MilterSim(actions=ms.ADDHDRS | ms.DELRCPT)
    try:
        t = milter_tern(make_tern, [sim.spec])
        sim.script = {"E": [ms.del_rcpt("<bob@example.test>"), ms.CONTINUE]}
        code, text = send(t, rcpts=("bob@example.test", "carol@example.test"))
        assert code == 250, text
        t.wait_messages("carol@example.test", 1)
        assert t.messages("bob@example.test") == []
        assert "event=milter_delrcpt" in t.log() and "to=\"bob@example.test\"" in t.log()
        # every recipient removed: 250, nothing delivered, no notice to the sender
        sim.script = {"E": [ms.del_rcpt("BOB@example.test"), ms.del_rcpt("carol@example.test"), ms.ACCEPT]}
        code, text = send(t, rcpts=("bob@example.test", "carol@example.test"))
        assert code == 250, text
        assert t.messages("bob@example.test") == [] and len(t.messages("carol@example.test")) == 1
        assert t.messages("alice@example.test") == []
        # a third, left alone, arrives; nothing of the first two stays queued
        sim.script = {}
        assert send(t)[0] == 250
        t.wait_messages("bob@example.test", 1)
        assert t.cli("queue", "list").stdout == ""
    finally:
        sim.stop()


def test_unoffered_modification_is_a_failure(make_tern, sim):
    """CHGHEADER is not offered: a filter that sends it misbehaves."""
    t = milter_tern(make_tern, [sim.spec], action="tempfail")
    sim.script = {"E": [ms.chg_header(1, "Subject", "x"), ms.CONTINUE]}
    code, msg = send(t)
    assert code == 451
    t.wait_log("reason=garbage")
    sim.script = {"B": [ms.add_header("X-Early", "1")]}   # only at end of message
    code, msg = send(t)
    assert code == 451
    t.wait_log("reason=bad_header")


def test_two_filters_in_order(make_tern):
    a, b = ms.MilterSim(), ms.MilterSim()
    try:
        t = milter_tern(make_tern, [a.spec, b.spec])
        a.script = {"E": [ms.add_header("X-A", "1"), ms.CONTINUE]}
        b.script = {"E": [ms.add_header("X-B", "2"), ms.CONTINUE]}
        assert send(t)[0] == 250
        (m,) = t.wait_messages("bob@example.test", 1)
        assert b"X-A: 1\n" in m and b"X-B: 2\n" in m
        assert "E" in a.wait_sessions(1)[0].commands and "E" in b.wait_sessions(1)[0].commands

        # the first refuses: the second is not asked at the end
        a.script = {"E": [ms.add_header("X-A", "1"), ms.REJECT]}
        code, _ = send(t)
        assert code == 550
        assert "E" not in b.wait_sessions(2)[1].commands

        # the first accepts, the second refuses
        a.script = {"E": [ms.ACCEPT]}
        b.script = {"E": [ms.TEMPFAIL]}
        code, _ = send(t)
        assert code == 451
        assert "E" in a.wait_sessions(3)[2].commands
        assert len(t.messages("bob@example.test")) == 1
    finally:
        a.stop()
        b.stop()


def test_skipped_steps_and_skip(make_tern):
    """Steps the filter asks to skip are not sent; those it wants no reply
    to are not waited for; SKIP ends the body it is sent."""
    s1 = ms.MilterSim(protocol=ms.NOHELO | ms.NOHDRS | ms.NR_RCPT | ms.NR_BODY | ms.SKIP)
    s2 = ms.MilterSim(protocol=ms.NOCONNECT | ms.NOMAIL | ms.NORCPT | ms.NODATA | ms.NOEOH | ms.NOBODY)
    s3 = ms.MilterSim(protocol=ms.SKIP | ms.HDR_LEADSPC)
    try:
        t = milter_tern(make_tern, [s1.spec, s2.spec, s3.spec])
        s3.script = {"B": [ms.SKIP_R], "E": [ms.add_header("X-Lead", "  spaced"), ms.CONTINUE]}
        body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 200
        assert send(t, body=body)[0] == 250
        c1 = s1.wait_sessions(1)[0].commands
        assert "H" not in c1 and "L" not in c1 and c1.count("B") == 4 and c1[-2:] == ["E", "Q"]
        assert s2.wait_sessions(1)[0].commands == ["O", "H", "L", "L", "E", "Q"]
        s3s = s3.wait_sessions(1)[0]
        # SKIP stops what is still to be sent; the chunks sent before it
        # came may be all of them: at most, never more
        assert s3s.commands.count("B") <= 4 and ("Subject", " big") in s3s.headers()
        (m,) = t.wait_messages("bob@example.test", 1)
        assert b"\nX-Lead:  spaced\n" in m and m.count(b"x" * 998) == 200
        assert max(len(d) for d in s1.msg_sessions[0].data("B")) <= 65535
        assert s1.msg_sessions[0].body() == body.split(b"\r\n\r\n", 1)[1]
    finally:
        s1.stop()
        s2.stop()
        s3.stop()


FAILURES = ["unreachable", "close_at_body", "stall", "garbage", "close_at_optneg"]


@pytest.mark.parametrize("action,want,greeting", [("tempfail", 451, "421 4.7.1"), ("reject", 550, "554 5.7.1"),
                                                   ("accept", 250, "220 ")])
def test_failures_get_default_action(make_tern, sim, action, want, greeting):
    """A filter that fails gets default_action at the verdict it was to
    give: at CONNECT (unreachable, or closed at OPTNEG) the greeting, in
    the message its end."""
    dead = f"inet:127.0.0.1:{free_port()}"
    t = milter_tern(make_tern, [sim.spec, dead], action=action, timeout="1s")
    # the unreachable one, at the greeting
    c = t.connect()
    assert c.greeting.startswith(greeting), c.greeting
    c.close()
    t.wait_log("reason=unreachable")
    delivered = 0
    if want == 250:
        assert send(t)[0] == 250
        delivered = 1
        t.wait_messages("bob@example.test", delivered)
    t.sections["milter"]["servers"] = sim.spec
    t.write_config()
    t.restart()
    for fail in (("B", "close"), ("B", "stall"), ("B", "garbage"), ("E", "garbage"), ("O", "close"),
                 ("E", "stall")):
        sim.fail = fail
        if fail[0] == "O" and want != 250:
            c = t.connect()
            assert c.greeting.startswith(greeting), (fail, c.greeting)
            c.close()
            continue
        code, msg = send(t)
        assert code == want, (fail, msg)
        if want == 250:
            delivered += 1
            t.wait_messages("bob@example.test", delivered)
    log = t.log()
    assert log.count("reason=timeout") == 2 and "reason=closed" in log and log.count("reason=garbage") == 2
    assert len(t.messages("bob@example.test")) == delivered


def test_service_switch(make_tern, sim):
    """[smtp] milter = off: the MX does not use the filters."""
    t = milter_tern(make_tern, [sim.spec], smtp={"milter": "off"})
    sim.script = {"E": [ms.REJECT]}
    assert send(t)[0] == 250
    t.wait_messages("bob@example.test", 1)
    assert sim.msg_sessions == []


def test_submission_macros_over_unix_socket(make_tern, tmp_path):
    """[submission] milter = on, a filter on a unix socket: the TLS and
    AUTH macros, the service's name."""
    sim = ms.MilterSim(unix_path=str(tmp_path / "milter.sock"))
    try:
        t = make_tern(services=("smtp", "submission"), users=USERS,
                      config={"milter": {"servers": sim.spec}, "submission": {"milter": "on"}})
        d = submission_data(t)
        assert d.cmd("Subject: s\r\n\r\nhi\r\n.").startswith("250")
        d.close()
        (s,) = sim.wait_sessions(1)
        assert s.macros["C"]["{daemon_name}"] == "submission"
        assert s.macros["H"]["{tls_version}"].startswith("TLSv1") and s.macros["H"]["{cipher}"]
        assert s.macros["M"]["{auth_authen}"] == "alice@example.test"
        t.wait_messages("bob@example.test", 1)
    finally:
        sim.stop()


def test_bdat_message_through_the_filter(make_tern, sim):
    """CHUNKING: a message sent with BDAT passes the filters the same way."""
    t = milter_tern(make_tern, [sim.spec])
    sim.script = {"E": [ms.add_header("X-Seen", "bdat"), ms.CONTINUE]}
    c = t.connect()
    for line in ("EHLO client.test", "MAIL FROM:<alice@example.test>", "RCPT TO:<bob@example.test>"):
        c.sendall(line.encode() + b"\r\n")
        assert recv_reply(c).startswith("250"), line
    part1, part2 = b"Subject: chunked\r\n\r\nfirst ", b"second\r\n"
    c.sendall(b"BDAT %d\r\n" % len(part1) + part1)
    assert recv_reply(c).startswith("250")
    c.sendall(b"BDAT %d LAST\r\n" % len(part2) + part2)
    assert recv_reply(c).startswith("250 2.0.0 Ok: queued")
    c.close()
    (m,) = t.wait_messages("bob@example.test", 1)
    assert b"X-Seen: bdat\n" in m
    s = sim.wait_sessions(1)[0]
    assert ("Subject", "chunked") in s.headers() and s.body() == b"first second\r\n"


def test_dkim_signs_the_modified_message(make_tern):
    """Submitted mail is signed after the filters changed it: the
    signature covers the changed Subject: and the replaced body, and
    dkimpy verifies the delivered copy."""
    import dkim
    sim = ms.MilterSim(actions=ALL)
    try:
        t = make_tern(services=("smtp", "submission"), users=USERS,
                      config={"milter": {"servers": sim.spec}, "submission": {"milter": "on"},
                              "relay": {"trusted_networks": "192.0.2.0/24"}})
        out = t.cli("dkim", "keygen", "example.test", "--selector", "s1")
        assert out.returncode == 0, out.stderr
        line = [l for l in out.stdout.splitlines() if "._domainkey." in l][0]
        record = "".join(re.findall(r'"([^"]*)"', line)).encode()
        t.restart()   # the keys are loaded at start (and reload)
        t.wait_log("event=dkim_keys_loaded reason=start keys=1")
        sim.script = {"E": [ms.chg_header(1, "Subject", "changed"), ms.repl_body(b"New body\r\n"),
                            ms.CONTINUE]}
        d = submission_data(t)
        assert d.cmd("From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: first\r\n\r\n"
                     "Old body\r\n.").startswith("250")
        d.close()
        (m,) = t.wait_messages("bob@example.test", 1)
        assert b"\nSubject: changed\n" in m and m.endswith(b"\n\nNew body\n") and b"first" not in m
        crlf = m.replace(b"\n", b"\r\n")
        dnsfunc = lambda name, timeout=5: record
        assert dkim.verify(crlf, dnsfunc=dnsfunc)
        assert not dkim.verify(crlf.replace(b"Subject: changed", b"Subject: first"), dnsfunc=dnsfunc)
    finally:
        sim.stop()


def vm_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(key)


def test_slow_filter_paces_what_is_sent(make_tern):
    """A filter that stops reading does not make tern buffer the message
    for it: what waits for its socket is bounded, the rest stays in the
    spool.  A 30 MB message, the filter reading nothing of its body until
    the client has sent all of it: tern's peak memory grows by far less
    than the message."""
    import threading
    sim = ms.MilterSim(actions=ALL)
    sim.pause_at = "B"
    try:
        t = milter_tern(make_tern, [sim.spec], timeout="120s")
        pid = t.proc.pid
        with open(f"/proc/{pid}/maps") as f:
            if "libasan" in f.read():
                pytest.skip("ASan's allocator keeps freed memory: RSS says nothing")
        line = b"x" * 998 + b"\r\n"
        body = b"Subject: large\r\n\r\n" + line * 30000
        c = t.connect(timeout=120)
        for cmd in ("EHLO client.test", "MAIL FROM:<alice@example.test>", "RCPT TO:<bob@example.test>"):
            c.sendall(cmd.encode() + b"\r\n")
            assert recv_reply(c).startswith("250"), cmd
        c.sendall(b"DATA\r\n")
        assert recv_reply(c).startswith("354")
        before = vm_kib(pid, "VmRSS")
        sent = threading.Event()

        def push():
            c.sendall(body + b".\r\n")
            sent.set()
        th = threading.Thread(target=push, daemon=True)
        th.start()
        assert sim.paused.wait(60)
        assert sent.wait(120), "the client could not send the message"
        sim.resume.set()
        assert recv_reply(c).startswith("250")
        c.close()
        peak = vm_kib(pid, "VmHWM")
        assert peak - before < 12 * 1024, (before, peak)
        (m,) = t.wait_messages("bob@example.test", 1)
        assert m.count(b"x" * 998) == 30000
        assert sim.msg_sessions[0].body() == line * 30000
    finally:
        sim.resume.set()
        sim.stop()


def test_spam_header_into_junk(make_tern):
    """[milter] spam_header: a message whose final header section has the
    field goes into each local recipient's Junk folder; one whose field a
    filter removed, or changed to another value, goes into the inbox."""
    sim = ms.MilterSim(actions=ALL)
    try:
        t = milter_tern(make_tern, [sim.spec], milter={"spam_header": "X-Spam: Yes"})
        sim.script = {"E": [ms.add_header("X-Spam", " yes "), ms.chg_header(1, "Subject", "*** SPAM *** hello"),
                            ms.CONTINUE]}
        assert send(t, rcpts=("bob@example.test", "carol@example.test"))[0] == 250
        for who in ("bob@example.test", "carol@example.test"):
            (m,) = t.wait_messages(who, 1, sub=".Junk/new")
            assert b"\nSubject: *** SPAM *** hello\n" in m and b"\nX-Spam:  yes \n\n" in m
        t.wait_log("event=milter_spam")
        assert t.messages("bob@example.test") == []
        # the client's own X-Spam: Yes, removed by the filter: the inbox
        spam_in = b"X-Spam: Yes\r\n" + MSG
        sim.script = {"E": [ms.chg_header(1, "X-Spam", ""), ms.CONTINUE]}
        assert send(t, body=spam_in)[0] == 250
        (m,) = t.wait_messages("bob@example.test", 1)
        assert b"X-Spam" not in m
        # changed to No: the inbox
        sim.script = {"E": [ms.chg_header(1, "X-Spam", "No"), ms.CONTINUE]}
        assert send(t, body=spam_in)[0] == 250
        m = t.wait_messages("bob@example.test", 2)
        assert len(t.messages("bob@example.test", sub=".Junk/new")) == 1
        assert t.log().count("event=milter_spam") == 1
    finally:
        sim.stop()


def test_shutdown_does_not_wait_for_a_silent_filter(make_tern):
    """A session whose greeting waits for a filter that never answers is
    ended at shutdown at once (421, freed), not after the milter timeout:
    before, its pause reference kept it until the 10 s grace forced the
    exit, and the sanitizer build reported it leaked."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        t = milter_tern(make_tern, [f"inet:127.0.0.1:{silent.getsockname()[1]}"], timeout="120s")
        before = t.log().count("event=connect ")
        c = socket.create_connection(("127.0.0.1", t.port()), timeout=10)
        t.wait_log("event=connect ", n=before + 1)
        started = time.monotonic()
        rc = t.stop()
        took = time.monotonic() - started
        assert rc == 0, t.log()[-3000:]
        assert took < 5, took
        assert "event=shutdown_forced" not in t.log()
        assert c.recv(200).startswith(b"421 4.3.2")
        c.close()
    finally:
        silent.close()

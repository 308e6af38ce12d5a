"""`tern queue list|show|flush|hold|release|delete` and the control socket.

Remote mail from a trusted client is relayed towards a smarthost on a
closed port, so it stays in the queue for the tools to look at."""
import json
import os
import socket
import stat
import time

import pytest

from conftest import free_port


def queued_tern(make_tern):
    closed = free_port()
    return make_tern(config={"relay": {"smarthost": f"[127.0.0.1]:{closed}"},
                             "queue": {"retry": "1h"}})


def submit(t, rcpts, subject="queued"):
    with t.smtp() as c:
        c.ehlo()
        assert c.mail("sender@example.test")[0] == 250
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        code, msg = c.data(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n".encode())
        assert code == 250, msg
        return msg.decode().rsplit(" ", 1)[1]


def entries(t):
    r = t.cli("queue", "list", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def control(t, request, raw=False, half_close=False):
    path = os.path.join(t.state, "run", "control.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(request if raw else request.encode() + b"\n")
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data.decode()
            data += chunk


def test_list_text_one_line_per_recipient(make_tern):
    t = queued_tern(make_tern)
    qid = submit(t, ["a@remote.test", "b@remote.test"])
    r = t.cli("queue", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    for line, rcpt in zip(lines, ["a@remote.test", "b@remote.test"]):
        words = line.split()
        assert words[0] == qid
        assert words[1] in ("pending", "deferred")
        assert words[2] == rcpt


def test_list_json(make_tern):
    t = queued_tern(make_tern)
    qid = submit(t, ["a@remote.test"])
    e = entries(t)
    assert len(e) == 1
    assert e[0]["id"] == qid
    assert e[0]["recipient"] == "a@remote.test"
    assert e[0]["sender"] == "sender@example.test"
    assert e[0]["state"] in ("pending", "deferred")
    assert e[0]["local"] is False


def test_list_empty(make_tern):
    t = queued_tern(make_tern)
    assert t.cli("queue", "list").stdout == ""
    assert entries(t) == []


def test_show(make_tern):
    t = queued_tern(make_tern)
    qid = submit(t, ["a@remote.test"], subject="look at me")
    r = t.cli("queue", "show", qid)
    assert r.returncode == 0, r.stderr
    assert f"id: {qid}" in r.stdout
    assert "from: <sender@example.test>" in r.stdout
    assert "rcpt: a@remote.test" in r.stdout
    assert "Subject: look at me" in r.stdout
    assert "body of look at me" in r.stdout
    j = json.loads(t.cli("queue", "show", qid, "--json").stdout)
    assert j["id"] == qid and j["recipients"][0]["recipient"] == "a@remote.test"


def test_show_unknown(make_tern):
    t = queued_tern(make_tern)
    r = t.cli("queue", "show", "0123456789abcdef")
    assert r.returncode == 1
    assert "no queued message" in r.stderr


def test_hold_release(make_tern):
    t = queued_tern(make_tern)
    qid = submit(t, ["a@remote.test"])
    r = t.cli("queue", "hold", qid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{qid} held"
    # A request that comes while a delivery of the message is in flight is
    # answered at once and applied when that job ends: wait for it.
    t.wait_log(f"event=held queue={qid}")
    assert entries(t)[0]["state"] == "held"
    assert "held: yes" in t.cli("queue", "show", qid).stdout
    r = t.cli("queue", "release", qid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{qid} released"
    t.wait_log(f"event=released queue={qid}")
    assert entries(t)[0]["state"] in ("pending", "deferred")


def test_hold_release_keeps_recipient_states(make_tern):
    """Hold and release change no recipient's state: the local one stays
    delivered (and is not delivered twice), the remote one waits."""
    t = queued_tern(make_tern)
    qid = submit(t, ["a@remote.test", "alice@example.test"])
    t.wait_messages("alice@example.test", 1)
    assert t.cli("queue", "hold", qid).returncode == 0
    assert t.cli("queue", "release", qid).returncode == 0
    t.wait_log(f"event=released queue={qid}")
    e = entries(t)
    assert [x["recipient"] for x in e] == ["a@remote.test", "alice@example.test"]
    assert e[1]["state"] == "delivered"
    assert e[0]["state"] in ("pending", "deferred")
    assert len(t.messages("alice@example.test")) == 1


def test_delete(make_tern):
    t = queued_tern(make_tern)
    q1 = submit(t, ["a@remote.test"], "one")
    q2 = submit(t, ["b@remote.test"], "two")
    r = t.cli("queue", "delete", q1)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{q1} deleted"
    t.wait_log(f"event=deleted queue={q1}")
    assert [x["id"] for x in entries(t)] == [q2]
    r = t.cli("queue", "delete", q1)
    assert r.returncode == 1
    assert "no such message" in r.stderr


def test_flush(make_tern):
    t = queued_tern(make_tern)
    submit(t, ["a@remote.test"], "one")
    submit(t, ["b@other.test"], "two")
    r = t.cli("queue", "flush")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("flushed ")
    r = t.cli("queue", "flush", "other.test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("flushed 1 message", "flushed 0 messages")
    r = t.cli("queue", "flush", "nowhere.test")
    assert r.stdout.strip() == "flushed 0 messages"
    assert "nowhere.test" in t.log()


def deferrals(t, qid):
    return t.log().count(f"event=delivery queue={qid} ")


def flush_until(t, domain, want, timeout=20.0):
    """Flush until want messages were scheduled: a message is in the wait
    list a moment after its deferral is logged."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = t.cli("queue", "flush", domain).stdout.strip()
        if out == want:
            return
        assert out == "flushed 0 messages", out
        time.sleep(0.05)
    raise AssertionError(f"flush {domain} never gave {want!r}")


def test_flush_picks_the_domain_only(make_tern):
    """flush DOMAIN starts exactly the waiting messages with a deferred
    recipient there, whatever the case of either; the others keep their
    retry time (an hour)."""
    t = queued_tern(make_tern)
    q1 = submit(t, ["a@remote.test"], "one")
    q2 = submit(t, ["b@Other.Test"], "two")
    t.wait_log("status=deferred", 2)
    assert t.cli("queue", "flush", "nowhere.test").stdout.strip() == "flushed 0 messages"
    flush_until(t, "OTHER.test", "flushed 1 message")
    t.wait_log(f"event=delivery queue={q2} ", 2)
    assert deferrals(t, q1) == 1
    assert t.cli("queue", "flush", "remote.test.other").stdout.strip() == "flushed 0 messages"


def test_release_tries_at_once(make_tern):
    """A held message is tried as soon as it is released, not at its
    retry time an hour away; while held, a flush leaves it alone."""
    t = queued_tern(make_tern)
    qid = submit(t, ["a@remote.test"])
    t.wait_log("status=deferred", 1)
    assert t.cli("queue", "hold", qid).stdout.strip() == f"{qid} held"
    assert t.cli("queue", "flush").stdout.strip() == "flushed 0 messages"
    assert "held: yes" in t.cli("queue", "show", qid).stdout
    assert deferrals(t, qid) == 1
    assert t.cli("queue", "release", qid).stdout.strip() == f"{qid} released"
    t.wait_log(f"event=delivery queue={qid} ", 2)
    assert "held: yes" not in t.cli("queue", "show", qid).stdout


def test_flush_json(make_tern):
    t = queued_tern(make_tern)
    out = control(t, "flush --json")
    status, body = out.split("\n", 1)
    assert status == "OK"
    assert isinstance(json.loads(body)["flushed"], int)


@pytest.mark.parametrize("args", [("hold", "nothex!"), ("hold",), ("release", "../../etc/passwd"),
                                  ("delete", "0123456789abcde"), ("flush", "bad domain;"),
                                  ("hold", "0123456789abcdef0")])
def test_bad_arguments(make_tern, args):
    t = queued_tern(make_tern)
    r = t.cli("queue", *args)
    assert r.returncode != 0
    assert r.stderr.startswith("tern: ")


def test_unknown_verb_cli(make_tern):
    t = queued_tern(make_tern)
    r = t.cli("queue", "frobnicate")
    assert r.returncode == 2
    assert "usage" in r.stderr


def test_server_not_running(make_tern):
    t = make_tern(start=False)
    for verb in (("flush",), ("hold", "0123456789abcdef")):
        r = t.cli("queue", *verb)
        assert r.returncode == 1
        assert "server is not running" in r.stderr
    # list and show read the queue directory: they work without a server
    assert t.cli("queue", "list").returncode == 0


def test_socket_mode_and_cleanup(make_tern):
    t = queued_tern(make_tern)
    path = os.path.join(t.state, "run", "control.sock")
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    t.stop()
    assert not os.path.exists(path)


def test_socket_protocol(make_tern):
    t = queued_tern(make_tern)
    qid = submit(t, ["a@remote.test"])
    out = control(t, "list")
    assert out.startswith("OK\n")
    assert qid in out and "a@remote.test" in out
    out = control(t, "list --json")
    assert json.loads(out.split("\n", 1)[1])[0]["id"] == qid
    assert control(t, "bogus").startswith("ERR unknown verb")
    assert control(t, "").startswith("ERR ")
    assert control(t, "list extra").startswith("ERR usage")
    assert control(t, "hold a b c d e f").startswith("ERR ")
    assert control(t, "show " + qid).startswith("OK\nid: " + qid)
    # bounded request: an over-long line is refused, the server goes on
    assert control(t, b"x" * 100000, raw=True).startswith("ERR request too long")
    assert control(t, b"list\0\n", raw=True).startswith("ERR ")
    assert control(t, "list").startswith("OK\n")


def test_socket_client_that_never_reads(make_tern):
    """A client that sends nothing does not block other requests."""
    t = queued_tern(make_tern)
    path = os.path.join(t.state, "run", "control.sock")
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(5)]
    for s in idle:
        s.connect(path)
    try:
        assert control(t, "list").startswith("OK\n")
    finally:
        for s in idle:
            s.close()


def test_long_list_streams(make_tern):
    t = queued_tern(make_tern)
    ids = set()
    with t.smtp() as c:
        for i in range(150):
            c.ehlo()
            c.mail("sender@example.test")
            c.rcpt(f"r{i}@remote.test")
            code, msg = c.data(f"Subject: {i}\r\n\r\nx\r\n".encode())
            assert code == 250
            ids.add(msg.decode().rsplit(" ", 1)[1])
    out = control(t, "list --json")
    assert out.startswith("OK\n")
    got = json.loads(out.split("\n", 1)[1])
    assert {e["id"] for e in got} == ids
    assert len(got) == 150
    text = control(t, "list")
    assert len(text.splitlines()) == 151
    # a client that shuts its side after the request still gets it all
    text = control(t, "list", half_close=True)
    assert len(text.splitlines()) == 151

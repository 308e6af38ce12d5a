"""Invariant 1 of DESIGN.md seen from the system calls: before tern writes
the 250 that accepts a message, every file it committed for that message
had its data synced after its last write, was renamed (or linked) into
place, and its directory was synced after the rename; every directory it
made on the way (a new user's Maildir and its parents) was synced with its
parent.  kill -9 keeps the page cache, so a commit that skips a sync
passes every crash test: only the order of the calls shows it.

strace (-f -yy) is attached to the running server; see syscalls.py.
"""
import os

import pytest

import syscalls
from conftest import Dnsmasq, free_port
from smtpraw import Raw, message, wait_for
from test_outbound import Receiver

NO_STRACE = syscalls.strace_usable()
pytestmark = pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))


def send(t, rcpts, subject):
    """One message on its own connection; returns (client port, reply)."""
    with Raw(t.port()) as c:
        port = c.sock.getsockname()[1]
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<sender@example.test>", 250)
        for r in rcpts:
            c.cmd(f"RCPT TO:<{r}>", 250)
        c.cmd("DATA", 354)
        c.send(message(subject) + ".\r\n")
        code, lines = c.expect()
        c.cmd("QUIT", 221)
    return port, code


def maildir_file(t, addr, subject):
    d = os.path.join(t.maildir(addr), "new")
    found = [n for n in os.listdir(d)
             if f"Subject: {subject}".encode() in open(os.path.join(d, n), "rb").read()]
    assert len(found) == 1, (addr, subject, os.listdir(d))
    return os.path.join(d, found[0])


def check_message(t, events, port, maildir_files=(), queued=False):
    """All the checks for one message whose reply went out on port: the
    files that hold it (its copies in maildir_files, or its queue file)
    were put in place between the 354 and the 250, durably.  Other files
    renamed meanwhile (deliveries of messages already accepted) are not
    this reply's business."""
    start, reply, code = syscalls.final_reply_after_data(events, port)
    assert code == "250", code
    commits = syscalls.commits_between(events, start, reply, t.state)
    dsts = [ren.paths()[1] for ren in commits]
    mine = [ren for ren in commits if ren.paths()[1] in maildir_files]
    for f in maildir_files:
        assert f in dsts, f"{f} was not put in place before the 250: {dsts}"
    if queued:
        msg = os.path.join(t.state, "queue", "msg")
        mine += [ren for ren in commits if os.path.dirname(ren.paths()[1]) == msg
                 and len(os.path.basename(ren.paths()[1])) == 16]
        assert mine, f"no queue file was put in place before the 250: {dsts}"
    problems = []
    for ren in mine:
        problems += syscalls.check_commit_durable(events, ren, reply)
        problems += syscalls.check_new_dirs_durable(events, start, ren, reply)
    assert problems == [], "\n".join(problems)


def test_direct_local_delivery_durable_before_250(make_tern, tmp_path):
    """All-local mail: the Maildir files (new users: their directories
    too) are durable before the 250."""
    t = make_tern()
    with syscalls.Recorder(t.proc.pid, str(tmp_path / "strace.out")) as rec:
        p1, _ = send(t, ["alice@example.test"], "first-for-alice")       # makes alice's Maildir
        p2, _ = send(t, ["alice@example.test", "bob@example.test"], "two-users")   # bob's is new
        p3, _ = send(t, ["alice@example.test"], "second-for-alice")
    events = rec.events()
    check_message(t, events, p1, [maildir_file(t, "alice@example.test", "first-for-alice")])
    start, reply, _ = syscalls.final_reply_after_data(events, p1)
    made = [e.paths()[0] for e in events if e.name in ("mkdir", "mkdirat") and e.ret == 0
            and start.entry < e.exit < reply.entry]
    assert os.path.join(t.maildir("alice@example.test"), "new") in [os.path.normpath(m) for m in made], made
    check_message(t, events, p2, [maildir_file(t, "alice@example.test", "two-users"),
                                  maildir_file(t, "bob@example.test", "two-users")])
    check_message(t, events, p3, [maildir_file(t, "alice@example.test", "second-for-alice")])


def test_queued_message_durable_before_250(make_tern, tmp_path):
    """Mail with a remote recipient: the queue file is durable before the
    250 (and it is then delivered to the fake MX)."""
    dns = rx = None
    try:
        mx_port = free_port("127.0.0.2")
        dns = Dnsmasq(["--local=/test/", "--mx-host=remote.test,mx.remote.test,10",
                       "--host-record=mx.remote.test,127.0.0.2"])
        rx = Receiver("127.0.0.2", mx_port)
        t = make_tern(config={"dns": {"servers": f"127.0.0.1:{dns.port}"},
                              "delivery": {"remote_port": str(mx_port)}})
        with syscalls.Recorder(t.proc.pid, str(tmp_path / "strace.out")) as rec:
            p1, _ = send(t, ["carol@remote.test"], "remote-only")
            p2, _ = send(t, ["alice@example.test", "dave@remote.test"], "mixed")
        events = rec.events()
        check_message(t, events, p1, queued=True)
        check_message(t, events, p2, queued=True)
        assert wait_for(lambda: len(rx.messages) == 2, 30), rx.messages
    finally:
        if rx:
            rx.stop()
        if dns:
            dns.stop()

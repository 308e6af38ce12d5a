"""IMAP's store side against the real binary: folder work off the event
loop (DESIGN.md invariant 2), the per-folder FETCH cache, CONDSTORE and
QRESYNC (RFC 7162), and POP3 next to IMAP on one Maildir.

The loop tests make the disk slow on purpose: strace, attached to the
running tern, delays every fsync or getdents64 (the state file's sync, the
readdir of a folder) by a second or more.  A session whose folder is being
scanned or committed waits for its answer; another session must meanwhile
get its answers as fast as ever, which it could not if that work ran on
the loop.
"""
import os
import subprocess
import threading
import time

import pytest

import syscalls
from test_imap import ALICE, SERVICES, Raw, imaps

NO_STRACE = syscalls.strace_usable()


def drop(md, sub, n, prefix="9"):
    """n small messages written straight into Maildir/sub (another MDA)."""
    os.makedirs(os.path.join(md, sub), exist_ok=True)
    for i in range(n):
        name = f"{prefix}{i:06d}.M{i}P1.drop" + (":2," if sub.endswith("cur") else "")
        with open(os.path.join(md, sub, name), "w") as f:
            f.write(f"From: a@b.test\nTo: {ALICE}\nSubject: dropped {i}\n\nbody {i}\n")


def login_raw(t):
    r = Raw(t)
    out = r.cmd("l", f"LOGIN {ALICE} alicepw")
    assert out[-1].startswith("l OK"), out
    return r


class SlowDisk:
    """strace attached to tern, delaying each call of syscall by delay s."""

    def __init__(self, pid, syscall, delay):
        self.args = [syscalls.STRACE, "-f", "-e", f"trace={syscall}", "-e",
                     f"inject={syscall}:delay_exit={int(delay * 1e6)}", "-o", "/dev/null", "-p", str(pid)]

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stderr=subprocess.PIPE, text=True)
        # strace says "Process N attached" for each thread: wait for the first
        line = self.proc.stderr.readline()
        assert "attached" in line, line
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(2)
        self.proc.wait(20)


def responsive_while(t, a, command, tag):
    """Send command on session a; while it is being answered, session b
    sends NOOPs.  Returns (a's answer, seconds a took, b's round trips)."""
    b = login_raw(t)
    result = {}

    def run_a():
        start = time.monotonic()
        result["out"] = a.cmd(tag, command, timeout=120)
        result["took"] = time.monotonic() - start

    th = threading.Thread(target=run_a)
    th.start()
    rtts = []
    k = 0
    while th.is_alive():
        k += 1
        start = time.monotonic()
        out = b.cmd(f"n{k}", "NOOP", timeout=60)
        rtts.append(time.monotonic() - start)
        assert out[-1] == f"n{k} OK NOOP completed", out
    th.join()
    return result["out"], result["took"], rtts


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
def test_a_slow_scan_does_not_stall_other_sessions(make_tern):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")          # first login: the folders exist
    drop(md, ".Archive/cur", 3000)
    a = login_raw(t)
    with SlowDisk(t.proc.pid, "getdents64", 0.7):
        out, took, rtts = responsive_while(t, a, "SELECT Archive", "s1")
    assert out[-1].startswith("s1 OK [READ-WRITE]"), out
    assert "* 3000 EXISTS" in out
    # the scan took seconds (four slow readdirs at least) ...
    assert took >= 2.0, took
    # ... and the other session was answered all along
    assert len(rtts) >= 3, rtts
    assert max(rtts) < 1.0, rtts
    assert "event=imap_job" in t.log() and "op=select messages=3000" in t.log()


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
@pytest.mark.parametrize("command", ["STORE 1:* +FLAGS.SILENT (\\Deleted)", "EXPUNGE"])
def test_a_slow_commit_does_not_stall_other_sessions(make_tern, command):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, ".Archive/cur", 2000)
    a = login_raw(t)
    assert a.cmd("s", "SELECT Archive", timeout=60)[-1].startswith("s OK")
    if command == "EXPUNGE":
        assert a.cmd("f", "STORE 1:* +FLAGS.SILENT (\\Deleted)", timeout=60)[-1].startswith("f OK")
    with SlowDisk(t.proc.pid, "fsync", 1.2):
        out, took, rtts = responsive_while(t, a, command, "c1")
    assert out[-1].startswith("c1 OK"), out
    if command == "EXPUNGE":
        assert sum(1 for l in out if l.endswith(" EXPUNGE")) == 2000
        assert os.listdir(os.path.join(md, ".Archive/cur")) == []
    else:
        assert all(n.endswith(":2,T") for n in os.listdir(os.path.join(md, ".Archive/cur")))
    # the tagged OK came after the state file's sync (and the directory's)
    assert took >= 2.0, took
    assert len(rtts) >= 3, rtts
    assert max(rtts) < 1.0, rtts


# ---- the FETCH cache ---------------------------------------------------------

FETCH_ALL = "FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)"


def rich(i):
    """A multipart message with an attachment and a message/rfc822 part."""
    return (f"From: \"Sender {i}\" <s{i}@remote.test>\nTo: {ALICE}\nCc: c@x.test\n"
            f"Subject: rich {i}\nMessage-ID: <m{i}@x>\nDate: Mon, 1 Jan 2024 10:00:{i % 60:02d} +0000\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
            "--b1\nContent-Type: text/plain; charset=utf-8\n\nhello " + "x" * (i % 50) + "\n"
            "--b1\nContent-Type: application/octet-stream; name=\"a.bin\"\n"
            "Content-Disposition: attachment; filename=\"a.bin\"\nContent-Transfer-Encoding: base64\n\n"
            "AAECAwQF\n"
            "--b1\nContent-Type: message/rfc822\n\nFrom: inner@x.test\nSubject: inner\n\ninner body\n"
            "--b1--\n")


def fetch_all(t, opened=None):
    """SELECT INBOX and FETCH_ALL in a fresh session; with opened (a
    list), the message files tern opened meanwhile are appended to it."""
    r = login_raw(t)
    md = t.maildir(ALICE)
    tracer = None
    if opened is not None:
        log = os.path.join(t.base, "open.trace")
        tracer = subprocess.Popen([syscalls.STRACE, "-f", "-qq", "-e", "trace=open,openat", "-o", log,
                                   "-p", str(t.proc.pid)], stderr=subprocess.PIPE, text=True)
        # with -qq strace says nothing on attach: wait until it traces
        deadline = time.time() + 20
        while time.time() < deadline and not (os.path.exists(log) and os.path.getsize(log) > 0):
            r.cmd("w", "NOOP")
    try:
        sel = r.cmd("s", "SELECT INBOX", timeout=60)
        assert sel[-1].startswith("s OK"), sel
        out = r.cmd("f", FETCH_ALL, timeout=120)
        assert out[-1] == "f OK FETCH completed", out[-1]
    finally:
        if tracer:
            tracer.send_signal(2)
            tracer.wait(20)
    r.cmd("z", "LOGOUT")
    if tracer:
        with open(log) as f:
            opened += [l for l in f if os.path.join(md, "cur") in l or os.path.join(md, "new") in l]
    return out[:-1]


def cache_file(t):
    return os.path.join(t.maildir(ALICE), "tern-imap.cache")


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
def test_fetch_cache_reads_no_message_the_second_time(make_tern):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    n = 400
    os.makedirs(os.path.join(md, "new"), exist_ok=True)
    for i in range(n):
        with open(os.path.join(md, "new", f"{1700000000 + i}.M{i}P1.x"), "w") as f:
            f.write(rich(i))
    cold_opened = []
    cold = fetch_all(t, cold_opened)
    assert len(cold) == n
    assert "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\")" in cold[0]
    assert "(\"message\" \"rfc822\" NIL" in cold[0] and "\"inner\"" in cold[0]
    assert len(cold_opened) >= n          # the first time every file is read
    # the cache file is written by a job after the FETCH; a restart proves
    # the second session reads it from the disk, not from memory
    t.stop()
    assert os.path.exists(cache_file(t))
    t.start()
    warm_opened = []
    warm = fetch_all(t, warm_opened)
    assert warm == cold
    assert warm_opened == [], warm_opened[:5]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "garbage"])
def test_a_damaged_cache_gives_the_same_answers(make_tern, damage):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    os.makedirs(os.path.join(md, "new"), exist_ok=True)
    for i in range(30):
        with open(os.path.join(md, "new", f"{1700000000 + i}.M{i}P1.x"), "w") as f:
            f.write(rich(i))
    first = fetch_all(t)
    t.stop()
    path = cache_file(t)
    data = bytearray(open(path, "rb").read())
    if damage == "flip":
        # inside a record's text: the checksum no longer matches
        data[data.index(b"rich 3")] ^= 0x20
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = b"tern-imap-cache 1\nr 1 2 3 999999999 5 6 x\n" + bytes(range(256)) + b"\nend 0\n"
    if damage == "delete":
        os.unlink(path)
    else:
        with open(path, "wb") as f:
            f.write(data)
    t.start()
    assert fetch_all(t) == first
    # and it is whole again afterwards: the next run answers the same
    t.stop()
    t.start()
    assert fetch_all(t) == first

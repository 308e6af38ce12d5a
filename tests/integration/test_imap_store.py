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

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
import re
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
        # (a STATUS opens the folder's directories)
        deadline = time.time() + 20
        while not (os.path.exists(log) and "Archive" in open(log).read()):
            assert time.time() < deadline, "strace does not trace"
            assert r.cmd("w", "STATUS Archive (MESSAGES)")[-1] == "w OK STATUS completed"
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
    # \Recent is the first session's only: not part of what is compared
    out = [re.sub(r"\\Recent ?| \\Recent(?=\))", "", l) for l in out]
    if tracer:
        with open(log) as f:
            # message files, not the directories a scan reads
            opened += [l for l in f if re.search(re.escape(md) + r"/(cur|new)/[^\"]", l)]
    return out[:-1]


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
def test_a_file_dropped_into_cur_during_a_big_store_is_seen(make_tern):
    """A STORE renaming hundreds of files takes cur/'s inotify watch off
    while it runs (its own renames would be two events each): what
    another program put there meanwhile is still found, by the scan that
    follows the job."""
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, "cur", 300)
    a, b = login_raw(t), login_raw(t)
    assert "* 300 EXISTS" in a.cmd("s", "SELECT INBOX")
    assert "* 300 EXISTS" in b.cmd("s", "SELECT INBOX")
    b.send("i IDLE\r\n")   # hears what a scan finds (a NOOP would scan itself)
    assert b.line().startswith("+ ")
    cur = os.path.join(md, "cur")
    result = {}
    with SlowDisk(t.proc.pid, "renameat", 0.005):
        th = threading.Thread(target=lambda: result.update(out=a.cmd("t", "STORE 1:* +FLAGS.SILENT (\\Seen)",
                                                                       timeout=120)))
        th.start()
        deadline = time.time() + 60
        while sum(n.endswith(":2,S") for n in os.listdir(cur)) < 20:   # the job is renaming
            assert time.time() < deadline and th.is_alive()
            time.sleep(0.02)
        drop(md, "cur", 1, prefix="8")
        assert th.is_alive()   # dropped while the job runs
        th.join(120)
    assert result["out"][-1].startswith("t OK"), result
    assert sum(n.endswith(":2,S") for n in os.listdir(cur)) == 300
    deadline = time.time() + 10
    while b.line(timeout=max(0.1, deadline - time.time())) != "* 301 EXISTS":
        assert time.time() < deadline, "no * 301 EXISTS"
    b.send("DONE\r\n")
    assert b.until("i")[-1] == "i OK IDLE terminated"


def cache_file(t):
    return os.path.join(t.maildir(ALICE), "tern-imap.cache")


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
def test_fetch_cache_reads_no_message_the_second_time(make_tern):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    n = 10000   # the folder
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
    # the cache file is written by a job when the session leaves; a restart proves
    # the second session reads it from the disk, not from memory
    t.stop()
    assert os.path.exists(cache_file(t))
    t.start()
    warm_opened = []
    warm = fetch_all(t, warm_opened)
    assert warm == cold
    assert warm_opened == [], warm_opened[:5]


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
def test_a_cold_select_reads_names_only(make_tern):
    """The first SELECT of a folder reads its directory, not its files
    (no ,W= in the names: the sizes are the files' own); dates and sizes
    come from the files when FETCH, SEARCH or STATUS first asks."""
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    arch = os.path.join(md, ".Archive")
    sizes, dates, arch_size = [], [], 0
    for d, n in ((md, 30), (arch, 4)):
        os.makedirs(os.path.join(d, "cur"), exist_ok=True)
        for i in range(n):
            text = f"From: a@b.test\nSubject: s{i}\n\n" + "line\n" * (i * 7)
            path = os.path.join(d, "cur", f"{1700000000 + i}.M{i}P1.x:2,")
            with open(path, "w") as f:
                f.write(text)
            when = 1700000000 + i * 86400
            os.utime(path, (when, when))
            if d == md:
                sizes.append(len(text) + text.count("\n"))
                dates.append(when)
            else:
                arch_size += len(text) + text.count("\n")
    r = login_raw(t)
    log = os.path.join(t.base, "select.trace")
    tracer = subprocess.Popen([syscalls.STRACE, "-f", "-qq", "-e", "trace=open,openat,stat,newfstatat,statx",
                               "-o", log, "-p", str(t.proc.pid)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while not (os.path.exists(log) and "Sent" in open(log).read()):
            assert time.time() < deadline, "strace does not trace"
            assert r.cmd("w", "STATUS Sent (MESSAGES)")[-1] == "w OK STATUS completed"
        out = r.cmd("s", "SELECT INBOX")
        assert out[-1].startswith("s OK") and "* 30 EXISTS" in out, out
    finally:
        tracer.send_signal(2)
        tracer.wait(20)
    with open(log) as f:
        touched = [l for l in f if re.search(re.escape(md) + r"/cur/[^\"]", l)]
    assert touched == [], touched[:5]
    out = r.cmd("f", "FETCH 1:* (RFC822.SIZE INTERNALDATE)")
    assert out[-1].startswith("f OK"), out
    got = [(int(re.search(r"RFC822.SIZE (\d+)", l).group(1)), re.search(r'INTERNALDATE "([^"]+)"', l).group(1))
           for l in out[:-1]]
    want = [(sizes[i], time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(dates[i]))) for i in range(30)]
    assert got == want
    # a fresh session on a folder not looked at yet: SEARCH by size and date
    t.stop()
    for name in ("tern-imap.state", "tern-imap.cache"):
        if os.path.exists(os.path.join(md, name)):
            os.unlink(os.path.join(md, name))
    t.start()
    r = login_raw(t)
    assert r.cmd("s", "SELECT INBOX")[-1].startswith("s OK")
    big = [str(i + 1) for i in range(30) if sizes[i] > 500]
    assert r.cmd("q", "SEARCH LARGER 500")[0] == "* SEARCH " + " ".join(big)
    since = time.strftime("%d-%b-%Y", time.gmtime(dates[20]))
    assert r.cmd("d", f"SEARCH SINCE {since}")[0] == "* SEARCH " + " ".join(str(i) for i in range(21, 31))
    # STATUS SIZE of a folder no one has opened (RFC 8438)
    out = r.cmd("t", "STATUS Archive (SIZE)")
    assert f"SIZE {arch_size})" in out[0], out
    r.cmd("z", "LOGOUT")


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


def test_fetch_leaves_the_cache_write_for_later(make_tern):
    """The cache file is rewritten whole, the folder held meanwhile: a
    FETCH that adds to it is not followed by that write at once (the next
    command on the folder would wait for it); it comes when the last
    session leaves the folder."""
    t = make_tern(services=SERVICES, config={"server": {"log_debug": "yes"}})
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    os.makedirs(os.path.join(md, "new"), exist_ok=True)
    for i in range(20):
        with open(os.path.join(md, "new", f"{1700000000 + i}.M{i}P1.x"), "w") as f:
            f.write(rich(i))
    r = login_raw(t)
    assert r.cmd("s", "SELECT INBOX")[-1].startswith("s OK")
    out = r.cmd("f", "FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert out[-1].startswith("f OK") and len(out) == 21
    assert r.cmd("t", "STORE 1 +FLAGS (\\Flagged)")[-1].startswith("t OK")
    # a folder's jobs run one at a time, in order: a cache write the
    # FETCH queued would have ended before the STORE's job
    log = t.wait_log("op=store")
    assert "op=cache" not in log[:log.index("op=store")], log[-2000:]
    assert not os.path.exists(cache_file(t))
    r.cmd("z", "LOGOUT")
    t.wait_log("op=save")   # the last session gone: state and cache written
    assert os.path.exists(cache_file(t))


def test_the_cache_is_written_while_the_session_stays(make_tern):
    """A session that keeps the folder open (an IDLE client) still gets
    the cache written, by a job within IMAP_CACHE_SAVE_DELAY_S (30 s)."""
    t = make_tern(services=SERVICES, config={"server": {"log_debug": "yes"}})
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    os.makedirs(os.path.join(md, "new"), exist_ok=True)
    for i in range(5):
        with open(os.path.join(md, "new", f"{1700000000 + i}.M{i}P1.x"), "w") as f:
            f.write(rich(i))
    r = login_raw(t)
    assert r.cmd("s", "SELECT INBOX")[-1].startswith("s OK")
    assert r.cmd("f", "FETCH 1:* (BODYSTRUCTURE)")[-1].startswith("f OK")
    t.wait_log("op=cache", timeout=60)
    assert os.path.exists(cache_file(t))
    assert r.cmd("n", "NOOP")[-1].startswith("n OK")
    r.cmd("z", "LOGOUT")


# ---- CONDSTORE and QRESYNC (RFC 7162) -----------------------------------------

def modseq_of(line):
    return int(re.search(r"MODSEQ \((\d+)\)", line).group(1))


def select_info(out):
    info = {}
    for l in out:
        m = re.match(r"\* OK \[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]", l)
        if m:
            info[m.group(1)] = int(m.group(2))
    return info


def test_condstore_dialog(make_tern):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, "new", 3, prefix="17")
    login_raw(t).cmd("x", "SELECT INBOX")   # takes \Recent: not in what follows
    r = login_raw(t)
    caps = r.cmd("c", "CAPABILITY")
    assert "CONDSTORE" in caps[0].split() and "QRESYNC" in caps[0].split(), caps
    out = r.cmd("s", "SELECT INBOX (CONDSTORE)")
    assert out[-1] == "s OK [READ-WRITE] SELECT completed", out
    h0 = select_info(out)["HIGHESTMODSEQ"]
    uv = select_info(out)["UIDVALIDITY"]
    out = r.cmd("f", "FETCH 1:* (UID MODSEQ)")
    assert out[-1] == "f OK FETCH completed"
    assert [re.sub(r"MODSEQ \(\d+\)", "M", l) for l in out[:-1]] == [
        f"* {i} FETCH (UID {i} M)" for i in (1, 2, 3)]
    m = [modseq_of(l) for l in out[:-1]]
    assert max(m) == h0 and m == sorted(m)
    # a STORE tells the new MODSEQ, above the old highest
    out = r.cmd("a", "STORE 2 +FLAGS (\\Seen)")
    assert len(out) == 2 and out[-1] == "a OK STORE completed", out
    assert re.fullmatch(r"\* 2 FETCH \(FLAGS \(\\Seen\) MODSEQ \((\d+)\)\)", out[0]), out
    m2 = modseq_of(out[0])
    assert m2 > h0
    # CHANGEDSINCE: only what changed, with MODSEQ though not asked for
    out = r.cmd("b", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h0})")
    assert out == [f"* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ({m2}))", "b OK FETCH completed"], out
    # UNCHANGEDSINCE: message 2 changed after h0, so it is left alone
    out = r.cmd("c", f"STORE 1:2 (UNCHANGEDSINCE {h0}) +FLAGS (\\Flagged)")
    assert len(out) == 2, out
    assert re.fullmatch(r"\* 1 FETCH \(FLAGS \(\\Flagged\) MODSEQ \((\d+)\)\)", out[0]), out
    m3 = modseq_of(out[0])
    assert m3 > m2
    assert out[1] == "c OK [MODIFIED 2] Conditional STORE failed", out
    out = r.cmd("c2", "UID STORE 2 (UNCHANGEDSINCE 1) -FLAGS.SILENT (\\Seen)")
    assert out == ["c2 OK [MODIFIED 2] Conditional STORE failed"], out
    out = r.cmd("c3", f"UID STORE 3 (UNCHANGEDSINCE {m3}) +FLAGS.SILENT (\\Answered)")
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 MODSEQ \((\d+)\)\)", out[0]) and out[1] == "c3 OK STORE completed", out
    m4 = modseq_of(out[0])
    # SEARCH MODSEQ: the hits and their highest MODSEQ
    out = r.cmd("d", f"SEARCH MODSEQ {m2}")
    assert out == [f"* SEARCH 1 2 3 (MODSEQ {m4})", "d OK SEARCH completed"], out
    out = r.cmd("d2", f"SEARCH RETURN (ALL) MODSEQ {m3}")
    assert out == ['* ESEARCH (TAG "d2") ALL 1,3 MODSEQ ' + str(m4), "d2 OK SEARCH completed"], out
    out = r.cmd("d3", f"SEARCH MODSEQ {m4 + 1}")
    assert out == ["* SEARCH", "d3 OK SEARCH completed"], out
    out = r.cmd("e", "STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
    assert out == [f"* STATUS INBOX (MESSAGES 3 HIGHESTMODSEQ {m4})", "e OK STATUS completed"], out
    # what another session changes comes with its MODSEQ
    o = login_raw(t)
    assert o.cmd("s", "SELECT INBOX")[-1].startswith("s OK")
    out = o.cmd("a", "STORE 3 -FLAGS.SILENT (\\Answered)")
    assert out == ["a OK STORE completed"], out
    out = r.cmd("g", "NOOP")
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 FLAGS \(\) MODSEQ \((\d+)\)\)", out[0]) and out[1] == "g OK NOOP completed", out
    m5 = modseq_of(out[0])
    assert m5 > m4
    # all of it survives a restart
    r.cmd("z", "LOGOUT")
    o.cmd("z", "LOGOUT")
    t.stop()
    t.start()
    r = login_raw(t)
    out = r.cmd("s", "EXAMINE INBOX")
    assert select_info(out) == {"UIDVALIDITY": uv, "UIDNEXT": 4, "HIGHESTMODSEQ": m5}, out
    out = r.cmd("f", "FETCH 1:* (MODSEQ)")
    assert [modseq_of(l) for l in out[:-1]] == [m3, m2, m5], out
    # bad modifiers
    assert r.cmd("b1", "FETCH 1 (FLAGS) (CHANGEDSINCE x)")[-1].startswith("b1 BAD")
    assert r.cmd("b2", "STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)")[-1].startswith("b2 BAD")
    assert r.cmd("b3", "FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1].startswith("b3 BAD")


def test_qresync_dialog(make_tern):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, "new", 6, prefix="17")
    a = login_raw(t)
    out = a.cmd("s", "SELECT INBOX")
    info = select_info(out)
    uv, h0 = info["UIDVALIDITY"], info["HIGHESTMODSEQ"]
    # QRESYNC without ENABLE is refused
    b = login_raw(t)
    out = b.cmd("q0", f"SELECT INBOX (QRESYNC ({uv} {h0}))")
    assert out[-1].startswith("q0 BAD"), out
    assert b.cmd("e", "ENABLE QRESYNC") == ["* ENABLED QRESYNC", "e OK ENABLE completed"]
    # meanwhile a flags 2, and expunges 3 and 5
    assert a.cmd("f", "STORE 2 +FLAGS.SILENT (\\Flagged)") == ["f OK STORE completed"]
    assert a.cmd("d", "UID STORE 3,5 +FLAGS.SILENT (\\Deleted)") == ["d OK STORE completed"]
    out = a.cmd("x", "EXPUNGE")
    assert out == ["* 3 EXPUNGE", "* 4 EXPUNGE", "x OK EXPUNGE completed"], out
    # b comes back with what it knew: the expunged as VANISHED (EARLIER),
    # the changed as FETCH with MODSEQ
    out = b.cmd("q1", f"SELECT INBOX (QRESYNC ({uv} {h0} 1:6))")
    assert out[-1] == "q1 OK [READ-WRITE] SELECT completed", out
    assert "* 4 EXISTS" in out
    assert "* VANISHED (EARLIER) 3,5" in out, out
    fetches = [l for l in out if " FETCH " in l]
    assert len(fetches) == 1 and re.fullmatch(r"\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)",
                                               fetches[0]), out
    assert out.index("* VANISHED (EARLIER) 3,5") < out.index(fetches[0])
    h1 = select_info(out)["HIGHESTMODSEQ"]
    assert h1 > h0
    # known-uids limits the answer; a wrong UIDVALIDITY gets a plain SELECT
    out = b.cmd("q2", f"SELECT INBOX (QRESYNC ({uv} {h0} 1:4))")
    assert "* VANISHED (EARLIER) 3" in out and "* OK [CLOSED] Previous mailbox closed" in out, out
    out = b.cmd("q3", f"SELECT INBOX (QRESYNC ({uv + 1} {h0}))")
    assert not [l for l in out if "VANISHED" in l or " FETCH " in l], out
    # with QRESYNC on, another session's expunge is told as VANISHED
    out = b.cmd("q6", f"SELECT INBOX (QRESYNC ({uv} {h1}))")
    assert not [l for l in out if "VANISHED" in l or " FETCH " in l], out
    assert a.cmd("d2", "UID STORE 1 +FLAGS.SILENT (\\Deleted)") == ["d2 OK STORE completed"]
    assert a.cmd("x2", "EXPUNGE") == ["* 1 EXPUNGE", "x2 OK EXPUNGE completed"]
    out = b.cmd("n", "NOOP")
    assert out[0] == "* VANISHED 1" and out[-1] == "n OK NOOP completed", out
    # UID FETCH ... (CHANGEDSINCE m VANISHED): both kinds of change at once
    out = b.cmd("v", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h0} VANISHED)")
    assert out[0] == "* VANISHED (EARLIER) 1,3,5", out
    assert re.fullmatch(r"\* 1 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", out[1]), out
    assert out[2:] == ["v OK FETCH completed"], out
    # the expunge log survives a restart
    a.cmd("z", "LOGOUT")
    b.cmd("z", "LOGOUT")
    t.stop()
    t.start()
    c = login_raw(t)
    assert c.cmd("e", "ENABLE CONDSTORE QRESYNC") == ["* ENABLED CONDSTORE QRESYNC", "e OK ENABLE completed"]
    out = c.cmd("q", f"EXAMINE INBOX (QRESYNC ({uv} {h0}))")
    assert "* VANISHED (EARLIER) 1,3,5" in out and out[-1] == "q OK [READ-ONLY] EXAMINE completed", out


def test_condstore_with_imaplib(make_tern):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, "new", 2, prefix="17")
    login_raw(t).cmd("x", "SELECT INBOX")   # takes \Recent
    c = imaps(t)
    assert "CONDSTORE" in c.capabilities and "QRESYNC" in c.capabilities
    typ, data = c.enable("CONDSTORE")
    assert typ == "OK" and c.untagged_responses.pop("ENABLED") == [b"CONDSTORE"], data
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    hms = int(c.untagged_responses["HIGHESTMODSEQ"][0])
    typ, data = c.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and re.fullmatch(rb"1 \(FLAGS \(\\Seen\) UID 1 MODSEQ \(\d+\)\)", data[0]), data
    typ, data = c.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {hms})")
    assert typ == "OK" and len(data) == 1 and data[0].startswith(b"1 (UID 1 FLAGS (\\Seen) MODSEQ ("), data
    typ, data = c.status("INBOX", "(HIGHESTMODSEQ)")
    assert typ == "OK" and int(re.search(rb"HIGHESTMODSEQ (\d+)", data[0]).group(1)) > hms
    c.logout()


# ---- \Recent (RFC 3501 2.3.2) -------------------------------------------------

def test_recent_belongs_to_one_session(make_tern):
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, "new", 2, prefix="17")
    s = login_raw(t)
    assert s.cmd("st", "STATUS INBOX (MESSAGES RECENT)") == [
        "* STATUS INBOX (MESSAGES 2 RECENT 2)", "st OK STATUS completed"]
    a = login_raw(t)
    out = a.cmd("s", "SELECT INBOX")
    assert "* 2 EXISTS" in out and "* 2 RECENT" in out, out
    assert a.cmd("f", "FETCH 1:* (FLAGS)") == [
        "* 1 FETCH (FLAGS (\\Recent))", "* 2 FETCH (FLAGS (\\Recent))", "f OK FETCH completed"]
    assert a.cmd("r", "SEARCH RECENT") == ["* SEARCH 1 2", "r OK SEARCH completed"]
    assert a.cmd("r2", "STORE 1 +FLAGS (\\Seen)") == [
        "* 1 FETCH (FLAGS (\\Seen \\Recent))", "r2 OK STORE completed"]
    assert a.cmd("r3", "SEARCH NEW") == ["* SEARCH 2", "r3 OK SEARCH completed"]
    assert a.cmd("r4", "SEARCH OLD") == ["* SEARCH", "r4 OK SEARCH completed"]
    # a has them: nobody else sees them recent
    assert s.cmd("st2", "STATUS INBOX (RECENT)") == ["* STATUS INBOX (RECENT 0)", "st2 OK STATUS completed"]
    b = login_raw(t)
    out = b.cmd("s", "SELECT INBOX")
    assert "* 0 RECENT" in out, out
    assert b.cmd("f", "FETCH 2 (FLAGS)") == ["* 2 FETCH (FLAGS ())", "f OK FETCH completed"]
    assert b.cmd("o", "SEARCH OLD") == ["* SEARCH 1 2", "o OK SEARCH completed"]
    b.cmd("u", "UNSELECT")
    # mail that comes while a has the folder is a's: EXISTS, then RECENT
    drop(md, "new", 1, prefix="18")
    a.send("i IDLE\r\n")
    # the news comes before the "+" (the scan was done) or after it
    lines = []
    while not (l := a.line()).startswith("+ "):
        lines.append(l)
    if not lines:
        lines = [a.line(), a.line()]
    assert lines == ["* 3 EXISTS", "* 3 RECENT"], lines
    a.send("DONE\r\n")
    assert a.until("i")[-1] == "i OK IDLE terminated"
    out = b.cmd("s2", "EXAMINE INBOX")
    assert "* 3 EXISTS" in out and "* 0 RECENT" in out, out
    # IMAP4rev2 has no \Recent (RFC 9051 appendix E)
    c = login_raw(t)
    assert c.cmd("e", "ENABLE IMAP4rev2")[-1] == "e OK ENABLE completed"
    out = c.cmd("s", "SELECT INBOX")
    assert not [l for l in out if "RECENT" in l], out
    # taken for good: after a restart no session has them recent again
    for x in (a, b, c, s):
        x.cmd("z", "LOGOUT")
    t.stop()
    t.start()
    d = login_raw(t)
    out = d.cmd("s", "SELECT INBOX")
    assert "* 0 RECENT" in out and "* 3 EXISTS" in out, out


# ---- POP3 and IMAP on one Maildir (the rule in tern(1)) -------------------------

def pop3s(t):
    import poplib
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p = poplib.POP3_SSL("127.0.0.1", t.port("pop3s"), context=ctx, timeout=10)
    p.user(ALICE)
    p.pass_("alicepw")
    return p


def uid_map(r, tag):
    """{subject number: UID} of the selected folder, by a FETCH."""
    out = r.cmd(tag, "FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert out[-1] == f"{tag} OK FETCH completed", out
    m = {}
    uid = None
    for l in out:
        g = re.match(r"\* \d+ FETCH \(UID (\d+)", l)
        if g:
            uid = int(g.group(1))
        g = re.match(r"Subject: dropped (\d+)", l)
        if g:
            m[int(g.group(1))] = uid
    return m


def test_pop3_and_imap_share_a_mailbox(make_tern):
    t = make_tern(services=SERVICES + ("pop3s",))
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, "new", 4, prefix="17")    # no ,W= in the names: POP3 renames them
    a = login_raw(t)
    assert a.cmd("s", "SELECT INBOX")[-1].startswith("s OK")
    before = uid_map(a, "u")
    assert sorted(before) == [0, 1, 2, 3]
    # POP3 holds its lock for its whole session; IMAP does not need it
    p = pop3s(t)
    assert len(p.list()[1]) == 4
    names = os.listdir(os.path.join(md, "cur"))
    assert all(",W=" in n for n in names), names    # POP3 tagged the sizes
    # the UIDs stay with the files across POP3's renames
    assert a.cmd("n", "NOOP") == ["n OK NOOP completed"]
    assert uid_map(a, "u2") == before
    # IMAP flags and expunges while the POP3 session is open
    assert a.cmd("f", f"UID STORE {before[0]} +FLAGS.SILENT (\\Flagged)") == ["f OK STORE completed"]
    assert a.cmd("d", f"UID STORE {before[3]} +FLAGS.SILENT (\\Deleted)") == ["d OK STORE completed"]
    assert a.cmd("x", "EXPUNGE") == ["* 4 EXPUNGE", "x OK EXPUNGE completed"]
    # POP3 follows the renamed message; the expunged one is an error, not a crash
    assert b"Subject: dropped 0" in b"\n".join(p.retr(1)[1])
    import poplib
    with pytest.raises(poplib.error_proto, match="Cannot read message 4"):
        p.retr(4)
    p.dele(2)
    p.quit()
    # POP3's delete reaches IMAP as an expunge; what is left is whole
    out = a.cmd("n2", "NOOP")
    assert out == ["* 2 EXPUNGE", "n2 OK NOOP completed"], out
    after = uid_map(a, "u3")
    assert after == {0: before[0], 2: before[2]}
    # IMAP's flag is kept; POP3 marks \\Seen only what it took from new/
    assert a.cmd("ff", f"UID FETCH {before[0]} (FLAGS)") == [
        f"* 1 FETCH (UID {before[0]} FLAGS (\\Flagged \\Recent))", "ff OK FETCH completed"]
    p = pop3s(t)
    assert len(p.list()[1]) == 2
    p.quit()


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
def test_a_slow_search_does_not_stall_other_sessions(make_tern):
    """SEARCH TEXT reads every message: on a worker, not on the loop."""
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, ".Archive/cur", 150)
    a = login_raw(t)
    assert a.cmd("s", "SELECT Archive", timeout=60)[-1].startswith("s OK")
    # flag keys need no file: answered at once, as before
    assert a.cmd("u", "SEARCH UNSEEN LARGER 10")[-1] == "u OK SEARCH completed"
    with SlowDisk(t.proc.pid, "openat", 0.02):
        out, took, rtts = responsive_while(t, a, "SEARCH TEXT \"body 142\"", "q1")
    assert out == ["* SEARCH 143", "q1 OK SEARCH completed"], out
    assert took >= 2.0, took
    assert len(rtts) >= 3, rtts
    assert max(rtts) < 1.0, rtts


def uid_set(text):
    """The UIDs of a sequence set such as "1:3,7"."""
    out = set()
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        lo, hi = int(lo), int(hi or lo)
        out.update(range(min(lo, hi), max(lo, hi) + 1))
    return out


def vanished_earlier(out):
    lines = [l for l in out if l.startswith("* VANISHED (EARLIER) ")]
    assert len(lines) <= 1, lines
    return uid_set(lines[0].split()[-1]) if lines else set()


def bounded_log_folder(make_tern):
    """Archive with 2,600 messages of which the 1,300 odd UIDs were
    expunged one range each: more than the expunge log keeps.  Returns
    (tern, session a, UIDVALIDITY, HIGHESTMODSEQ before, UIDs present)."""
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    drop(md, ".Archive/cur", 2600)
    a = login_raw(t)
    assert a.cmd("e", "ENABLE QRESYNC")[-1] == "e OK ENABLE completed"
    out = a.cmd("s", "SELECT Archive", timeout=60)
    info = select_info(out)
    uv, h0 = info["UIDVALIDITY"], info["HIGHESTMODSEQ"]
    odd = sorted(range(1, 2600, 2))
    for k in range(0, len(odd), 200):
        uids = ",".join(str(u) for u in odd[k:k + 200])
        assert a.cmd(f"d{k}", f"UID STORE {uids} +FLAGS.SILENT (\\Deleted)")[-1].startswith(f"d{k} OK")
    out = a.cmd("x", "EXPUNGE", timeout=60)
    assert out[-1] == "x OK EXPUNGE completed", out[-3:]
    return t, a, uv, h0, set(range(2, 2601, 2))


def test_qresync_with_a_bounded_expunge_log(make_tern):
    """RFC 7162: the expunge log is bounded (the state file does not grow
    with every expunge ever made); a client whose modseq is older than
    the log's start is told every UID that is not there, so no expunge is
    ever left out; within the log the answer is exact."""
    t, a, uv, h0, present = bounded_log_folder(make_tern)
    odd = set(range(1, 2600, 2))
    with open(os.path.join(t.maildir(ALICE), ".Archive", "tern-imap.state")) as f:
        state = f.read().splitlines()
    ranges = [l for l in state if l.startswith("x ")]
    assert 0 < len(ranges) <= 1280, len(ranges)        # bounded, not 1300
    assert any(l.startswith("xfloor ") for l in state)

    # a client from before the log's start: every UID that is not there
    b = login_raw(t)
    assert b.cmd("e", "ENABLE QRESYNC")[-1] == "e OK ENABLE completed"
    out = b.cmd("q1", f"EXAMINE Archive (QRESYNC ({uv} {h0}))")
    assert out[-1] == "q1 OK [READ-ONLY] EXAMINE completed", out[-2:]
    assert vanished_earlier(out) == odd
    h1 = select_info(out)["HIGHESTMODSEQ"]
    # UID FETCH (CHANGEDSINCE VANISHED) tells the same truth
    out = b.cmd("v1", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h0} VANISHED)", timeout=60)
    assert out[-1] == "v1 OK FETCH completed"
    assert vanished_earlier(out) == odd
    out = b.cmd("v2", f"UID FETCH 1:20 (FLAGS) (CHANGEDSINCE {h0} VANISHED)")
    assert vanished_earlier(out) == set(range(1, 20, 2))

    # within the log: exactly what went
    assert a.cmd("d", "UID STORE 2,4 +FLAGS.SILENT (\\Deleted)")[-1] == "d OK STORE completed"
    assert a.cmd("x2", "EXPUNGE")[-1] == "x2 OK EXPUNGE completed"
    out = b.cmd("q2", f"EXAMINE Archive (QRESYNC ({uv} {h1}))")
    assert vanished_earlier(out) == {2, 3, 4}, out[-3:]   # 3 went before: told again, never left out
    out = b.cmd("v3", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h1} VANISHED)")
    assert vanished_earlier(out) == {2, 3, 4}

    # the log's bound survives a restart
    a.cmd("z", "LOGOUT")
    b.cmd("z", "LOGOUT")
    t.stop()
    t.start()
    c = login_raw(t)
    assert c.cmd("e", "ENABLE QRESYNC")[-1] == "e OK ENABLE completed"
    out = c.cmd("q", f"EXAMINE Archive (QRESYNC ({uv} {h0}))")
    assert vanished_earlier(out) == odd | {2, 4}
    out = c.cmd("q2", f"EXAMINE Archive (QRESYNC ({uv} {h1}))")
    assert vanished_earlier(out) == {2, 3, 4}


def test_qresync_sequence_match_data(make_tern):
    """RFC 7162 3.2.5.2: the (message numbers, UIDs) pairs of SELECT's
    QRESYNC that the mailbox still has as the client says show that it
    knows every expunge up to that UID: when the expunge log does not
    reach back to the client's modseq, they narrow VANISHED (EARLIER);
    when it does, they change nothing."""
    t, a, uv, h0, present = bounded_log_folder(make_tern)
    b = login_raw(t)
    assert b.cmd("e", "ENABLE QRESYNC")[-1] == "e OK ENABLE completed"
    h1 = select_info(b.cmd("s", "EXAMINE Archive"))["HIGHESTMODSEQ"]
    assert a.cmd("d", "UID STORE 2,4 +FLAGS.SILENT (\\Deleted)")[-1] == "d OK STORE completed"
    assert a.cmd("x2", "EXPUNGE")[-1] == "x2 OK EXPUNGE completed"
    present -= {2, 4}
    gone = set(range(1, 2601)) - present
    # within the log the pairs change nothing
    out = b.cmd("q3", f"EXAMINE Archive (QRESYNC ({uv} {h1} 1:2600 (1,250 6,504)))")
    assert vanished_earlier(out) == {2, 3, 4}
    # before the log's start, message 250 is UID 504 and 500 is 1004:
    # nothing up to 1004 went that the client does not know of
    out = b.cmd("q4", f"EXAMINE Archive (QRESYNC ({uv} {h0} 1:2600 (250,500 504,1004)))")
    assert out[-1] == "q4 OK [READ-ONLY] EXAMINE completed", out[-2:]
    assert vanished_earlier(out) == {u for u in gone if u > 1004}
    # taken up to the first pair that does not match; without known-uids too
    out = b.cmd("q5", f"EXAMINE Archive (QRESYNC ({uv} {h0} (250,500,600 504,1006,1204)))")
    assert vanished_earlier(out) == {u for u in gone if u > 504}
    out = b.cmd("q6", f"EXAMINE Archive (QRESYNC ({uv} {h0} 1:100 (1 7)))")
    assert vanished_earlier(out) == {u for u in gone if u <= 100}
    # sets of different lengths, or not ascending, are refused
    for k, bad in enumerate(["(1,2 6)", "(2,1 8,6)", "(1:* 6:8)", "(1 6) (2 8)", "(1)"]):
        out = b.cmd(f"b{k}", f"EXAMINE Archive (QRESYNC ({uv} {h0} 1:10 {bad}))")
        assert out[-1].startswith(f"b{k} BAD"), (bad, out)
    out = b.cmd("b9", f"EXAMINE Archive (QRESYNC ({uv} {h0}) QRESYNC ({uv} {h0}))")
    assert out[-1].startswith("b9 BAD"), out


def big_message(path, mib):
    """A multipart message of about mib MiB (bare LF line ends, as an MDA
    writes them): a text part and a base64 attachment."""
    import base64
    line = base64.b64encode(bytes(range(256)) * 3)[:76] + b"\n"
    att = line * (mib * 1024 * 1024 // len(line))
    with open(path, "wb") as f:
        f.write(b"From: a@b.test\nTo: alice@example.test\nSubject: big\nMIME-Version: 1.0\n"
                b"Content-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain\n\n"
                b"the text\n--zz\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
                + att + b"--zz--\n")
    return os.path.getsize(path)


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
@pytest.mark.parametrize("items,delay", [
    ("BODY.PEEK[]", 0.4),                  # the literal's octets
    ("BODYSTRUCTURE", 0.15),               # the structure: the whole file parsed
    ("BINARY.PEEK[2]", 0.15),              # decoded: measured, then streamed
    ("BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[2.MIME]", 0.15),
])
def test_a_slow_read_of_a_big_message_does_not_stall_other_sessions(make_tern, items, delay):
    """DESIGN.md invariant 2: FETCH reads a message over 64 KiB on a
    worker, so a slow disk under one session's FETCH of it leaves the
    others answered at once.  strace makes each pread (the reads of
    message files) slow."""
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    size = big_message(os.path.join(md, ".Archive", "cur", "1700000000.M1P1.big:2,S"), 1)
    a = login_raw(t)
    assert a.cmd("s", "SELECT Archive", timeout=60)[-1].startswith("s OK")
    with SlowDisk(t.proc.pid, "pread64", delay):
        out, took, rtts = responsive_while(t, a, f"FETCH 1 ({items})", "f1")
    assert out[-1] == "f1 OK FETCH completed", out[-2:]
    assert out[0].startswith("* 1 FETCH ("), out[0][:200]
    if items == "BODY.PEEK[]":
        crlf = size + sum(l.count("\n") for l in open(os.path.join(md, ".Archive", "cur",
                                                                     "1700000000.M1P1.big:2,S")))
        assert f"BODY[] {{{crlf}}}" in out[0], out[0][:100]
    assert took >= 1.0, took          # the reads were slow ...
    assert len(rtts) >= 2, rtts
    assert max(rtts) < 1.0, rtts      # ... and the other session did not wait for them


def test_a_big_message_read_on_workers_is_sent_whole(make_tern):
    """A message over 64 KiB is read by worker jobs, 256 KiB at a time:
    the literals are the same octets as from the loop (line ends made
    CRLF across the jobs' boundaries, partial ranges across them, BINARY
    decoded), and the session goes on with the next command."""
    import base64
    t = make_tern(services=SERVICES)
    md = t.maildir(ALICE)
    login_raw(t).cmd("z", "LOGOUT")
    path = os.path.join(md, ".Archive", "cur", "1700000000.M1P1.big:2,")
    big_message(path, 3)
    raw = open(path, "rb").read()
    crlf = raw.replace(b"\n", b"\r\n")
    c = imaps(t)
    assert c.select("Archive")[0] == "OK"
    typ, data = c.fetch("1", "(RFC822.SIZE BODY.PEEK[] BODY.PEEK[]<262100.300> BINARY.PEEK[2] "
                             "BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODYSTRUCTURE)")
    assert typ == "OK", data
    parts = {}
    for d in data:
        if isinstance(d, tuple):
            label = d[0].rsplit(b" ", 1)[0].split(b"(", 1)[-1].split(b" ")[-1]
            parts[label.decode()] = d[1]
    assert parts["BODY[]"] == crlf
    assert parts["BODY[]<262100>"] == crlf[262100:262400]
    body2 = crlf.split(b"base64\r\n\r\n", 1)[1].rsplit(b"--zz--", 1)[0]
    assert parts["BINARY[2]"] == base64.b64decode(body2)
    assert parts["BODY[2.MIME]"] == (b"Content-Type: application/octet-stream\r\n"
                                     b"Content-Transfer-Encoding: base64\r\n\r\n")
    assert b"Subject: big\r\n\r\n" in parts.values(), parts.keys()   # HEADER.FIELDS
    tail = [d for d in data if not isinstance(d, tuple)]
    assert any(b"BODYSTRUCTURE ((\"text\" \"plain\"" in x for x in tail + [d[0] for d in data if isinstance(d, tuple)])
    # the same from a second session, while the first fetches too
    d = imaps(t)
    assert d.select("Archive")[0] == "OK"
    typ, got = d.fetch("1", "(BINARY.PEEK[2]<1000.70000>)")
    assert typ == "OK" and got[0][1] == base64.b64decode(body2)[1000:71000]
    assert c.noop()[0] == "OK" and d.logout()[0] == "BYE"
    c.logout()

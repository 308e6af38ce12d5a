#!/usr/bin/python3
"""Benchmark: POP3 retrieval, Dovecot vs tern, over the same mailbox.

A Maildir of N messages (default 1000 x 4 KiB, LF line ends, files in new/)
is built once and copied into each server's mail location before each
round; each round starts the server fresh. One session times:
  a) connect + USER/PASS + STAT + LIST + UIDL (Python's poplib)
  b) RETR of every message with poplib, one at a time
  b') RETR of every message again, by a raw-socket client (one recv loop
     per response, no line parsing), one at a time: what the server gives
     when the client costs next to nothing, and the figure to compare
     with the targets (each round trip is timed: its median, steadier
     on a shared machine than the total, is shown as well); then 1000
     raw NOOP round trips (median), the floor under any one-at-a-time
     command
  b'') RETR of every message again, pipelined (RFC 2449 PIPELINING, which
     both servers announce): BENCH_POP3_WINDOW (16) commands in flight,
     so the round trip is off the figure and what is left is the server's
     own cost per message
  c) DELE of every message + QUIT (the deletion is committed at QUIT)
Rounds alternate which server goes first; the median over
BENCH_POP3_ROUNDS rounds (default 3) is reported, with the server's CPU
(its whole process tree, from the scheduler's nanosecond counters) per
RETR in each of b), b') and b''), and the client's own CPU (its thread's
CPU clock) per RETR in b) and b'): poplib's per-line parsing is what
bounds b) at 100 KiB.

Env: BENCH_POP3_MESSAGES (1000), BENCH_POP3_SIZES (comma list of message
sizes, default "4096,102400"; BENCH_POP3_SIZE, one size, still works),
BENCH_POP3_ROUNDS (3), BENCH_POP3_WINDOW (16), BENCH_POP3_CLIENT_CPU (pin
the client to this CPU, as taskset would), BENCH_TIMEOUT, BENCH_KEEP.
"""

import os
import poplib
import shutil
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

USER, PASSWORD = "bench@bench.test", "benchpw"
NOOPS = 1000    # raw NOOP round trips after b'): the floor under any RETR
TERM = b"\r\n.\r\n"
POP3_WAIT = 5   # s for tern's POP3 listener to greet once SMTP is up


def make_messages(dirpath, n, size):
    """n deterministic messages of exactly `size` bytes each (LF ends)."""
    os.makedirs(dirpath)
    for i in range(n):
        head = (f"Return-Path: <bench@source.test>\n"
                f"From: bench@source.test\nTo: {USER}\n"
                f"Subject: pop3 bench message {i}\n"
                f"Message-ID: <pop3-{i}@source.test>\n"
                f"Date: Tue, 14 Nov 2023 22:13:20 +0000\n\n")
        body, line = [], 0
        left = size - len(head)
        while left > 0:
            text = f"{i:06d}-{line:04d} " + "abcdefghijklmnopqrstuvwxyz" * 3
            text = text[:min(left, 72) - 1] + "\n" if left > 1 else "\n"
            body.append(text)
            left -= len(text)
            line += 1
        name = f"1700000000.M{i:06d}P1.bench.test"
        with open(os.path.join(dirpath, name), "w") as f:
            f.write(head + "".join(body))


def fill_maildir(src, maildir, owner=None):
    for d in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    for name in os.listdir(src):
        shutil.copyfile(os.path.join(src, name), os.path.join(maildir, "new", name))
    if owner:
        top = maildir
        while os.path.basename(os.path.dirname(top)) != "mail":
            top = os.path.dirname(top)
        b.chown_tree(top, *owner)


def raw_retr_all(sock, count, expect, times=None):
    """RETR 1..count over the raw socket, one at a time; each response is
    read until its terminating CRLF.CRLF with plain recv() calls.  Returns
    the body octets (CRLF form, as sent) or raises on a bad response.
    Each round trip's seconds are appended to times (a list) if given."""
    got = 0
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    clock = time.perf_counter
    for i in range(1, count + 1):
        t = clock()
        sock.sendall(b"RETR %d\r\n" % i)
        n = 0
        while True:
            if n == len(buf):
                buf.extend(bytes(len(buf)))
                view = memoryview(buf)
            k = sock.recv_into(view[n:])
            if k == 0:
                raise RuntimeError("connection closed during RETR")
            n += k
            if n >= 5 and buf[n - 5:n] == b"\r\n.\r\n":
                break
        if times is not None:
            times.append(clock() - t)
        if buf[:3] != b"+OK":
            raise RuntimeError(f"RETR {i}: {bytes(buf[:60])!r}")
        got += n - (buf.index(b"\r\n") + 2) - 3
    del view
    if got != expect:
        raise RuntimeError(f"raw RETR returned {got} octets, expected {expect}")
    return got


def raw_retr_pipelined(sock, count, expect, window):
    """RETR 1..count with up to `window` commands in flight: a new group
    is sent whenever half the window has been answered.  Responses are
    read into one buffer (recv_into its free end, compacted when full)
    and split at their CRLF.CRLF (a body line "." is sent stuffed, so
    only a response's end looks like that), with no copy per response.
    Returns the body octets, as raw_retr_all does, or raises on a bad
    response."""
    got = done = sent = 0
    buf = bytearray(1 << 22)
    view = memoryview(buf)
    start = end = scan = 0       # unparsed octets are buf[start:end]
    while done < count:
        if sent - done <= window // 2 and sent < count:
            upto = min(count, done + window)
            sock.sendall(b"".join(b"RETR %d\r\n" % i for i in range(sent + 1, upto + 1)))
            sent = upto
        if end == len(buf):
            rest = end - start
            if start == 0:           # one response longer than the buffer
                view.release()
                buf = buf + bytearray(len(buf))
                view = memoryview(buf)
            else:
                buf[:rest] = buf[start:end]
            scan -= start
            start, end = 0, rest
        k = sock.recv_into(view[end:])
        if k == 0:
            raise RuntimeError("connection closed during pipelined RETR")
        end += k
        while True:
            term = buf.find(TERM, scan, end)
            if term < 0:
                scan = max(start, end - 4)
                break
            if not buf.startswith(b"+OK", start):
                raise RuntimeError(f"pipelined RETR {done + 1}: {bytes(buf[start:start + 60])!r}")
            got += term + 2 - (buf.index(b"\r\n", start) + 2)
            start = scan = term + 5
            done += 1
        if start == end:
            start = end = scan = 0
    view.release()
    if end > start:
        raise RuntimeError(f"pipelined RETR: {end - start} octets after the last response")
    if got != expect:
        raise RuntimeError(f"pipelined RETR returned {got} octets, expected {expect}")
    return got


def tree_cpu_ns(pid):
    """CPU seconds used so far by the live threads of pid and its
    descendants, from /proc/*/task/*/schedstat (nanoseconds; clock ticks
    of 10 ms are too coarse for a RETR of a few microseconds).  None if
    pid is gone."""
    kids = b._children_map()
    total, todo, first = 0, [pid], True
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            if first:
                return None
            continue
        first = False
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        todo.extend(kids.get(p, []))
    return total / 1e9


def client_run(port, n, size, crlf_octets, cpu, window=16):
    """The timed phases; returns (seconds a, b, b', c, server CPU seconds
    in b, in b', seconds per raw NOOP round trip, seconds b'', server CPU
    seconds in b'', client CPU seconds in b, in b', the median seconds of
    one raw RETR round trip, error or None).  The NOOP figure is the
    median round trip too."""
    socket.setdefaulttimeout(b.TIMEOUT)
    t0 = time.monotonic()
    p = poplib.POP3("127.0.0.1", port, timeout=b.TIMEOUT)
    p.user(USER)
    p.pass_(PASSWORD)
    count, _octets = p.stat()
    listing = p.list()[1]
    uidls = p.uidl()[1]
    t1 = time.monotonic()
    err = None
    if count != n or len(listing) != n or len(uidls) != n:
        err = f"STAT/LIST/UIDL saw {count}/{len(listing)}/{len(uidls)} of {n}"
    c1 = cpu()
    t1 = time.monotonic()
    m1 = time.thread_time()
    got = 0
    for i in range(1, count + 1):
        _resp, lines, _o = p.retr(i)
        got += sum(len(l) + 1 for l in lines)   # bytes as LF-ended lines
    m2 = time.thread_time()
    t2 = time.monotonic()
    c2 = cpu()
    if got != count * size and not err:
        err = f"RETR returned {got} bytes, expected {count * size}"
    # poplib has read every response whole, so its buffer is empty and the
    # socket can be used directly
    t2 = time.monotonic()
    m2r = time.thread_time()
    rtts = []
    try:
        raw_retr_all(p.sock, count, crlf_octets * count // n if n else 0, rtts)
    except RuntimeError as exc:
        err = err or str(exc)
    m3 = time.thread_time()
    t3 = time.monotonic()
    c3 = cpu()
    t3s = time.monotonic()
    try:
        raw_retr_pipelined(p.sock, count, crlf_octets * count // n if n else 0, window)
    except RuntimeError as exc:
        err = err or str(exc)
    t3p = time.monotonic()
    c3p = cpu()
    noops = []
    for _ in range(NOOPS):
        t = time.perf_counter()
        p.sock.sendall(b"NOOP\r\n")
        if not p.sock.recv(512).startswith(b"+OK"):
            err = err or "NOOP: no +OK"
        noops.append(time.perf_counter() - t)
    noop = statistics.median(noops) if noops else 0.0
    t3d = time.monotonic()
    for i in range(1, count + 1):
        p.dele(i)
    p.quit()
    t4 = time.monotonic()
    return (t1 - t0, t2 - t1, t3 - t2, t4 - t3d, c2 - c1, c3 - c2, noop,
            t3p - t3s, c3p - c3, m2 - m1, m3 - m2r,
            statistics.median(rtts) if rtts else 0.0, err)


def one_round(name, cleanup, start, n, size, crlf_octets, window):
    mark = cleanup.mark()
    try:
        wd = b.make_workdir(cleanup, name)
        port, maildir, pid = start(wd)
        res = client_run(port, n, size, crlf_octets,
                         lambda: tree_cpu_ns(pid) or 0.0, window)
        left = b.count_dir(os.path.join(maildir, "new")) + \
            b.count_dir(os.path.join(maildir, "cur"))
        if left and not res[-1]:
            res = res[:-1] + (f"{left} messages left after DELE+QUIT",)
        return res
    finally:
        cleanup.unwind(mark)


def start_dovecot(cleanup, src):
    def start(wd):
        d = b.Dovecot(cleanup, wd, USER, PASSWORD)
        fill_maildir(src, d.maildir, owner=b.ensure_user())
        d.start()
        return d.port, d.maildir, d.proc.pid
    return start


def start_tern(cleanup, src):
    def start(wd):
        t = b.Tern(cleanup, wd, pop3=True)
        fill_maildir(src, t.maildir)
        t.start()
        if not b.wait_banner(t.pop3_port, b"+OK", POP3_WAIT, t.proc):
            raise b.TernUnavailable("POP3 listener does not answer +OK")
        return t.pop3_port, t.maildir, t.proc.pid
    return start


def summarize(results, n, size):
    if not results:
        return None
    med = [statistics.median(r[k] for r in results) for k in range(12)]
    a, bb, braw, c, cpu_b, cpu_raw, noop, bpipe, cpu_pipe, cli_b, cli_raw, rtt = med
    errs = [r[12] for r in results if r[12]]
    return {"a_ms": a * 1000, "b_ms": bb * 1000, "c_ms": c * 1000,
            "retr_s": n / bb if bb else None,
            "retr_mib_s": n * size / bb / 2**20 if bb else None,
            "retr_cpu_ms": cpu_b * 1000 / n if n else None,
            "retr_client_ms": cli_b * 1000 / n if n else None,
            "raw_client_ms": cli_raw * 1000 / n if n else None,
            "raw_rtt_us": rtt * 1e6,
            "raw_rtt_s": 1 / rtt if rtt else None,
            "raw_ms": braw * 1000,
            "raw_s": n / braw if braw else None,
            "raw_mib_s": n * size / braw / 2**20 if braw else None,
            "raw_cpu_ms": cpu_raw * 1000 / n if n else None,
            "pipe_ms": bpipe * 1000,
            "pipe_s": n / bpipe if bpipe else None,
            "pipe_mib_s": n * size / bpipe / 2**20 if bpipe else None,
            "pipe_cpu_ms": cpu_pipe * 1000 / n if n else None,
            "dele_s": n / c if c else None,
            "noop_us": noop * 1e6,
            "error": errs[0] if errs else None}


METRICS = [("a) login+STAT/LIST/UIDL ms", "a_ms", ".1f"),
           ("b) RETR all ms", "b_ms", ".1f"),
           ("b) RETR msgs/s", "retr_s", ".0f"),
           ("b) RETR MiB/s", "retr_mib_s", ".1f"),
           ("b) server CPU ms/RETR", "retr_cpu_ms", ".4f"),
           ("b) client CPU ms/RETR", "retr_client_ms", ".4f"),
           ("b') raw RETR all ms", "raw_ms", ".1f"),
           ("b') raw RETR msgs/s", "raw_s", ".0f"),
           ("b') raw RETR MiB/s", "raw_mib_s", ".1f"),
           ("b') server CPU ms/RETR", "raw_cpu_ms", ".4f"),
           ("b') client CPU ms/RETR", "raw_client_ms", ".4f"),
           ("b') raw RETR median RTT us", "raw_rtt_us", ".1f"),
           ("b') raw RETR msgs/s at med", "raw_rtt_s", ".0f"),
           ("b') raw NOOP median RTT us", "noop_us", ".1f"),
           ("b'') pipelined RETR all ms", "pipe_ms", ".1f"),
           ("b'') pipelined RETR msgs/s", "pipe_s", ".0f"),
           ("b'') pipelined RETR MiB/s", "pipe_mib_s", ".1f"),
           ("b'') server CPU ms/RETR", "pipe_cpu_ms", ".4f"),
           ("c) DELE all+QUIT ms", "c_ms", ".1f"),
           ("c) DELE msgs/s", "dele_s", ".0f")]


def sizes():
    text = os.environ.get("BENCH_POP3_SIZES", "").strip()
    if not text:
        text = os.environ.get("BENCH_POP3_SIZE", "").strip() or "4096,102400"
    return [int(x) for x in text.split(",") if x.strip()]


def size_label(size):
    return f"{size // 1024}KiB" if size % 1024 == 0 else f"{size}B"


def main():
    n = b.env_int("BENCH_POP3_MESSAGES", 1000)
    rounds = b.env_int("BENCH_POP3_ROUNDS", 3)
    window = max(1, b.env_int("BENCH_POP3_WINDOW", 16))
    pin = os.environ.get("BENCH_POP3_CLIENT_CPU", "").strip()
    if pin:
        os.sched_setaffinity(0, {int(pin)})
    cleanup = b.Cleanup()
    rows, notes = [], []
    flip = False
    try:
        for size in sizes():
            wd = b.make_workdir(cleanup, "pop3src")
            src = os.path.join(wd, "messages")
            make_messages(src, n, size)
            crlf = sum(size + open(os.path.join(src, f), "rb").read().count(b"\n")
                       for f in os.listdir(src))
            refs, terns, ref_err, tern_err = [], [], None, None
            for r in range(rounds):
                order = ("tern", "dovecot") if flip else ("dovecot", "tern")
                flip = not flip
                for who in order:
                    if who == "dovecot" and ref_err is None:
                        b.log(f"pop3: {size_label(size)}: Dovecot ({r + 1}/{rounds}) ...")
                        try:
                            refs.append(one_round("dovecot", cleanup, start_dovecot(cleanup, src),
                                                  n, size, crlf, window))
                        except Exception as exc:
                            ref_err = f"Dovecot: {exc}"
                    elif who == "tern" and tern_err is None:
                        b.log(f"pop3: {size_label(size)}: tern ({r + 1}/{rounds}) ...")
                        try:
                            terns.append(one_round("tern", cleanup, start_tern(cleanup, src),
                                                   n, size, crlf, window))
                        except b.TernUnavailable as exc:
                            tern_err = f"tern POP3: not available: {exc}"
                        except Exception as exc:
                            tern_err = f"tern POP3: failed: {exc!r}"
            ref = summarize(refs, n, size) or {}
            tern = summarize(terns, n, size) or {}
            if ref_err:
                ref["error"] = ref_err
            if tern_err:
                tern["error"] = tern_err
            case = f"{n}x{size_label(size)} med/{rounds}"
            heading = (f"pop3: {n} x {size_label(size)}, median of {rounds} rounds, window {window}"
                       + (f", client on CPU {pin}" if pin else ""))
            b.report_case("pop3", case, heading, "Dovecot", METRICS, ref, tern, rows, notes, width=28)
    finally:
        cleanup.run()
    b.save_results("pop3", rows, notes)


if __name__ == "__main__":
    main()

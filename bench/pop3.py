#!/usr/bin/python3
"""Benchmark: POP3 retrieval, Dovecot vs tern, over the same mailbox.

A Maildir of N messages (default 1000 x 4 KiB, LF line ends, files in new/)
is built once and copied into each server's mail location before each
round; each round starts the server fresh. A Python poplib client times
three phases:
  a) connect + USER/PASS + STAT + LIST + UIDL
  b) RETR of every message
  c) DELE of every message + QUIT (the deletion is committed at QUIT)
The median over BENCH_POP3_ROUNDS rounds (default 3) is reported.

Env: BENCH_POP3_MESSAGES (1000), BENCH_POP3_SIZE (4096),
BENCH_POP3_ROUNDS (3), BENCH_TIMEOUT, BENCH_KEEP.
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


def client_run(port, n, size):
    """The three timed phases; returns (seconds a, b, c, error or None)."""
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
    got = 0
    for i in range(1, count + 1):
        _resp, lines, _o = p.retr(i)
        got += sum(len(l) + 1 for l in lines)   # bytes as LF-ended lines
    t2 = time.monotonic()
    if got != count * size and not err:
        err = f"RETR returned {got} bytes, expected {count * size}"
    for i in range(1, count + 1):
        p.dele(i)
    p.quit()
    t3 = time.monotonic()
    return t1 - t0, t2 - t1, t3 - t2, err


def run_rounds(name, cleanup, src, n, size, rounds, start):
    """start(workdir) -> (port, maildir); returns list of phase tuples."""
    results = []
    for r in range(rounds):
        mark = cleanup.mark()
        try:
            wd = b.make_workdir(cleanup, name)
            port, maildir = start(wd)
            res = client_run(port, n, size)
            left = b.count_dir(os.path.join(maildir, "new")) + \
                b.count_dir(os.path.join(maildir, "cur"))
            if left and not res[3]:
                res = res[:3] + (f"{left} messages left after DELE+QUIT",)
            results.append(res)
        finally:
            cleanup.unwind(mark)
    return results


def start_dovecot(cleanup, src):
    def start(wd):
        d = b.Dovecot(cleanup, wd, USER, PASSWORD)
        fill_maildir(src, d.maildir, owner=b.ensure_user())
        d.start()
        return d.port, d.maildir
    return start


def start_tern(cleanup, src):
    def start(wd):
        t = b.Tern(cleanup, wd, pop3=True)
        fill_maildir(src, t.maildir)
        t.start()
        if not b.wait_banner(t.pop3_port, b"+OK", POP3_WAIT, t.proc):
            raise b.TernUnavailable("POP3 listener does not answer +OK")
        return t.pop3_port, t.maildir
    return start


def summarize(results, n, size):
    if not results:
        return None
    a = statistics.median(r[0] for r in results)
    bb = statistics.median(r[1] for r in results)
    c = statistics.median(r[2] for r in results)
    errs = [r[3] for r in results if r[3]]
    return {"a_ms": a * 1000, "b_ms": bb * 1000, "c_ms": c * 1000,
            "retr_s": n / bb if bb else None,
            "retr_mib_s": n * size / bb / 2**20 if bb else None,
            "dele_s": n / c if c else None,
            "error": errs[0] if errs else None}


METRICS = [("a) login+STAT/LIST/UIDL ms", "a_ms", ".1f"),
           ("b) RETR all ms", "b_ms", ".1f"),
           ("b) RETR msgs/s", "retr_s", ".0f"),
           ("b) RETR MiB/s", "retr_mib_s", ".1f"),
           ("c) DELE all+QUIT ms", "c_ms", ".1f"),
           ("c) DELE msgs/s", "dele_s", ".0f")]


def main():
    n = b.env_int("BENCH_POP3_MESSAGES", 1000)
    size = b.env_int("BENCH_POP3_SIZE", 4096)
    rounds = b.env_int("BENCH_POP3_ROUNDS", 3)
    cleanup = b.Cleanup()
    rows, notes = [], []
    try:
        wd = b.make_workdir(cleanup, "pop3src")
        src = os.path.join(wd, "messages")
        make_messages(src, n, size)
        b.log("pop3: Dovecot ...")
        try:
            ref = summarize(run_rounds("dovecot", cleanup, src, n, size, rounds,
                                       start_dovecot(cleanup, src)), n, size)
        except Exception as exc:
            ref = {"error": f"Dovecot: {exc}"}
        b.log("pop3: tern ...")
        try:
            tern = summarize(run_rounds("tern", cleanup, src, n, size, rounds,
                                        start_tern(cleanup, src)), n, size)
        except b.TernUnavailable as exc:
            tern = {"error": f"tern POP3: not available: {exc}"}
        except Exception as exc:
            tern = {"error": f"tern POP3: failed: {exc!r}"}
    finally:
        cleanup.run()
    case = f"{n}x{size // 1024}KiB med/{rounds}"
    b.report_case("pop3", case, f"pop3: {n} x {size // 1024} KiB, median of {rounds} rounds", "Dovecot",
                  METRICS, ref, tern, rows, notes, width=26)
    b.save_results("pop3", rows, notes)


if __name__ == "__main__":
    main()

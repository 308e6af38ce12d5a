#!/usr/bin/python3
"""Benchmark: another session's round trip while clients log in at once.

tern alone (the reference column is the same tern with no login running:
the idle round trip). An SMTP session on port 25, opened first, sends
NOOP and times each reply, one after the other, while BENCH_LOGIN_CLIENTS
(20) clients log in at the same moment with a yescrypt ({CRYPT}) secret,
for each way in:
  smtp_auth_plain  EHLO + AUTH PLAIN on the submission port
  pop3_user_pass   USER + PASS on the POP3 port
  pop3_auth_plain  AUTH PLAIN on the POP3 port
BENCH_LOGIN_ROUNDS (5) bursts per way; the round trips of all bursts are
pooled. Reported: NOOP p50, p99 and max in ms, and the wall time of a
burst (the slowest login). Target (issue 12): p99 < 50 ms.

Env: BENCH_LOGIN_CLIENTS (20), BENCH_LOGIN_ROUNDS (5), BENCH_TIMEOUT,
BENCH_KEEP.
"""

import base64
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

PASSWORD = "bench-login-pw"
IDLE_SAMPLES = 200

METRICS = [
    ("NOOP p50 ms", "p50", ".2f"),
    ("NOOP p99 ms", "p99", ".2f"),
    ("NOOP max ms", "max", ".2f"),
    ("burst wall ms", "burst", ".0f"),
]


class LoginTern(b.Tern):
    """benchlib's tern plus a submission listener and n users sharing one
    yescrypt secret (made by `tern user add`)."""

    def __init__(self, cleanup, workdir, n):
        super().__init__(cleanup, workdir, pop3=True)
        self.sub_port = b.free_port()
        with open(self.conf, "a") as f:
            f.write(f"[submission]\nlisten = 127.0.0.1:{self.sub_port}\n")
        users = os.path.join(self.dir, "users")
        os.unlink(users)
        r = subprocess.run([b.TERN_BIN, "user", "add", "u0@bench.test", "--scheme", "crypt",
                            "-c", self.conf], input=PASSWORD + "\n", capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise b.TernUnavailable(f"tern user add failed: {r.stderr.strip()}")
        secret = open(users).read().split(":", 1)[1].strip()
        with open(users, "w") as f:
            f.writelines(f"u{i}@bench.test:{secret}\n" for i in range(n))
        os.chmod(users, 0o600)


class Lines:
    """CRLF lines from a socket."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=b.TIMEOUT)
        self.buf = b""

    def get(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """The last line of an SMTP reply."""
        while True:
            line = self.get()
            if line[3:4] != b"-":
                return line

    def say(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def close(self):
        self.sock.close()


def plain(i):
    return base64.b64encode(f"\0u{i}@bench.test\0{PASSWORD}".encode()).decode()


def way_smtp(t, i):
    c = Lines(t.sub_port)
    c.reply()
    c.say("EHLO bench.test")
    c.reply()
    c.say("AUTH PLAIN " + plain(i))
    ok = c.reply().startswith(b"235")
    c.close()
    return ok


def way_pop3(t, i, user_pass):
    c = Lines(t.pop3_port)
    c.get()
    if user_pass:
        c.say(f"USER u{i}@bench.test")
        c.get()
        c.say("PASS " + PASSWORD)
    else:
        c.say("AUTH PLAIN " + plain(i))
    ok = c.get().startswith(b"+OK")
    c.say("QUIT")
    c.get()
    c.close()
    return ok


WAYS = [
    ("smtp_auth_plain", way_smtp),
    ("pop3_user_pass", lambda t, i: way_pop3(t, i, True)),
    ("pop3_auth_plain", lambda t, i: way_pop3(t, i, False)),
]


def noop_ms(probe):
    t0 = time.perf_counter()
    probe.say("NOOP")
    if not probe.reply().startswith(b"250"):
        raise RuntimeError("NOOP refused")
    return (time.perf_counter() - t0) * 1000


def burst(t, probe, way, clients):
    """clients logins at once; NOOP round trips (ms) while any runs, and
    the burst's wall time (ms)."""
    oks = [False] * clients
    start = threading.Barrier(clients + 1)

    def client(i):
        start.wait()
        try:
            oks[i] = way(t, i)
        except OSError:
            oks[i] = False

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    rtts = []
    deadline = time.time() + b.TIMEOUT
    while any(th.is_alive() for th in threads) and time.time() < deadline:
        rtts.append(noop_ms(probe))
    wall = (time.perf_counter() - t0) * 1000
    for th in threads:
        th.join(5)
    if not all(oks):
        raise RuntimeError(f"{oks.count(False)} of {clients} logins failed")
    return rtts, wall


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summarize(rtts, walls=None):
    if not rtts:
        return {"error": "no round trip measured"}
    return {"p50": statistics.median(rtts), "p99": percentile(rtts, 99), "max": max(rtts),
            "burst": statistics.median(walls) if walls else None, "n": len(rtts)}


def main():
    clients = b.env_int("BENCH_LOGIN_CLIENTS", 20)
    rounds = b.env_int("BENCH_LOGIN_ROUNDS", 5)
    cleanup = b.Cleanup()
    rows, notes, results = [], [], []
    try:
        wd = b.make_workdir(cleanup, "login")
        try:
            t = LoginTern(cleanup, wd, clients)
            t.start()
            probe = Lines(t.port)
            probe.reply()
            probe.say("EHLO probe.bench.test")
            probe.reply()
            idle = summarize([noop_ms(probe) for _ in range(IDLE_SAMPLES)])
            for name, way in WAYS:
                b.log(f"login_load: {name} x {clients}, {rounds} rounds ...")
                try:
                    rtts, walls = [], []
                    for _ in range(rounds):
                        r, w = burst(t, probe, way, clients)
                        rtts += r
                        walls.append(w)
                    results.append((name, summarize(rtts, walls)))
                except Exception as exc:
                    results.append((name, {"error": f"tern: {name} failed: {exc!r}"}))
            probe.close()
        except b.TernUnavailable as exc:
            idle = {}
            results = [(name, {"error": f"tern: not available: {exc}"}) for name, _ in WAYS]
    finally:
        cleanup.run()
    for name, res in results:
        case = f"{name} c={clients}"
        b.report_case("login_load", case,
                      f"login_load: {name}, {clients} concurrent yescrypt logins x {rounds}"
                      f" ({res.get('n', 0)} NOOPs; idle = no login running)",
                      "idle", METRICS, idle, res, rows, notes, width=14)
    b.save_results("login_load", rows, notes)


if __name__ == "__main__":
    main()

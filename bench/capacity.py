#!/usr/bin/python3
"""Benchmark: tern's capacity under idle and hostile clients (tern alone;
each figure is set against its target from issue 12, not against another
server).

  a) 10,000 idle SMTP sessions (greeted, then silent): how many got 220,
     tern's RSS per idle session, the time a new session takes for a
     whole transaction (EHLO .. DATA .. 250 .. QUIT) meanwhile, and RSS
     once they have all closed.  Targets: all admitted, <= 16 KiB per
     session, < 1 s, RSS back near where it started.
  b) A client that pipelines HELP for BENCH_CAP_PIPE_SECONDS (15) without
     reading a byte: tern's peak RSS (target < 64 MiB).
  c) 500 clients each sending one byte every 2 s (command_timeout 10 s)
     while a normal client runs transactions: its latency, against the
     same client alone, and when the tricklers were dropped (from their
     first byte; target: at the command timeout).

Descriptors: tern raises its own soft RLIMIT_NOFILE to the hard limit
(20,000 here) and this driver raises its own likewise: the limits are per
process, so one client process holds the 10,000 client sockets in its
own table while tern holds the 10,000 server ends in its.

Env: BENCH_CAP_SESSIONS (10000), BENCH_CAP_TRICKLERS (500),
BENCH_CAP_PIPE_SECONDS (15), BENCH_TIMEOUT, BENCH_KEEP.
"""

import os
import resource
import selectors
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

SESSIONS = b.env_int("BENCH_CAP_SESSIONS", 10000)
TRICKLERS = b.env_int("BENCH_CAP_TRICKLERS", 500)
PIPE_SECONDS = b.env_int("BENCH_CAP_PIPE_SECONDS", 15)
COMMAND_TIMEOUT = 10
TRICKLE_EVERY = 2.0
MESSAGE = (b"From: bench@source.test\r\nTo: bench@bench.test\r\nSubject: capacity\r\n\r\n"
           + b"x" * 70 + b"\r\n") * 20


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def vm_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def new_tern(cleanup, tag, extra=()):
    work = b.make_workdir(cleanup, tag)
    t = b.Tern(cleanup, work, extra=["[smtp]", "max_connections = 1000000",
                                     "max_connections_per_ip = 1000000", *extra])
    t.start()
    return t


def read_reply(sock, timeout=10.0):
    """One whole SMTP reply (bytes), or what came before EOF."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" " and lines[-1] == b"":
            return data


def transaction(port):
    """Seconds for connect .. 220 .. EHLO .. DATA .. 250 .. QUIT, or an error."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        steps = [None, b"EHLO client.test\r\n", b"MAIL FROM:<bench@source.test>\r\n",
                 b"RCPT TO:<bench@bench.test>\r\n", b"DATA\r\n", MESSAGE + b".\r\n", b"QUIT\r\n"]
        want = [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
        for line, code in zip(steps, want):
            if line:
                s.sendall(line)
            r = read_reply(s, 30)
            if not r.split(b"\r\n")[-2].startswith(code):
                raise RuntimeError(f"expected {code!r}, got {r[-200:]!r}")
    return time.monotonic() - t0


# ---------------------------------------------------------------- a) idle sessions

def open_idle(port, n):
    """n connections, each greeted; returns (sockets, greeted, refused, other)."""
    sel = selectors.DefaultSelector()
    socks, greeted, refused, other = [], 0, 0, 0
    pending = {}
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
        pending[s.fileno()] = b""
        sel.register(s, selectors.EVENT_READ)
        # read greetings as we go, so the accept queue never backs up
        for key, _ in sel.select(timeout=0):
            greeted, refused, other = _greet(sel, key, pending, greeted, refused, other)
    deadline = time.monotonic() + b.TIMEOUT
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            greeted, refused, other = _greet(sel, key, pending, greeted, refused, other)
    sel.close()
    return socks, greeted, refused, other + len(pending)


def _greet(sel, key, pending, greeted, refused, other):
    s = key.fileobj
    try:
        chunk = s.recv(512)
    except BlockingIOError:
        return greeted, refused, other
    except OSError:
        chunk = b""
    data = pending[s.fileno()] + chunk
    if chunk and not data.endswith(b"\r\n"):
        pending[s.fileno()] = data
        return greeted, refused, other
    del pending[s.fileno()]
    sel.unregister(s)
    if data.startswith(b"220"):
        return greeted + 1, refused, other
    if data.startswith(b"421"):
        return greeted, refused + 1, other
    return greeted, refused, other + 1


def case_idle(cleanup, rows, notes):
    res = {}
    mark = cleanup.mark()
    try:
        t = new_tern(cleanup, "capacity-idle")
        pid = t.proc.pid
        time.sleep(0.5)
        res["rss_start"] = vm_rss_kib(pid)
        transaction(t.port)                    # warm: the first one creates the Maildir
        res["rss_warm"] = vm_rss_kib(pid)
        t0 = time.monotonic()
        socks, greeted, refused, other = open_idle(t.port, SESSIONS)
        res["open_s"] = time.monotonic() - t0
        res["greeted"], res["refused"], res["other"] = greeted, refused, other
        time.sleep(1)
        res["rss_idle"] = vm_rss_kib(pid)
        res["per_session"] = (res["rss_idle"] - res["rss_warm"]) / max(greeted, 1)
        res["txn_ms"] = transaction(t.port) * 1000
        for s in socks:
            s.close()
        n0 = 0
        deadline = time.monotonic() + b.TIMEOUT
        while time.monotonic() < deadline:
            with open(t.log, "rb") as f:
                n0 = f.read().count(b"event=disconnect")
            if n0 >= len(socks) + 3:   # + the start-up probe and two transactions
                break
            time.sleep(0.2)
        time.sleep(1)
        res["rss_after"] = vm_rss_kib(pid)
    except (b.TernUnavailable, OSError, RuntimeError) as e:
        res["error"] = str(e)
    finally:
        cleanup.unwind(mark)
    print(f"\n== capacity: {SESSIONS} idle SMTP sessions")
    print(f"   admitted {res.get('greeted')} (421: {res.get('refused')}, other: {res.get('other')}),"
          f" opened in {b.fmt(res.get('open_s'), '.1f')} s")
    print(f"   RSS: start {res.get('rss_start')} KiB, warm {res.get('rss_warm')} KiB, with the sessions"
          f" {res.get('rss_idle')} KiB, after they closed {res.get('rss_after')} KiB")
    print(f"   per idle session {b.fmt(res.get('per_session'), '.2f')} KiB (target <= 16);"
          f" a transaction meanwhile {b.fmt(res.get('txn_ms'), '.1f')} ms (target < 1000)")
    add = lambda metric, target, key, spec: rows.append(
        {"bench": "capacity", "case": f"{SESSIONS} idle", "metric": metric, "reference": target,
         "tern": res.get(key), "ratio": b.ratio(res.get(key), target), "spec": spec})
    add("sessions admitted", SESSIONS, "greeted", ".0f")
    add("RSS per session KiB", 16, "per_session", ".2f")
    add("transaction ms", 1000, "txn_ms", ".1f")
    add("RSS after close KiB", res.get("rss_start"), "rss_after", ".0f")
    if res.get("error"):
        print("   tern: " + res["error"])
        notes.append("[idle] " + b.note_line("tern", res["error"]))


# ---------------------------------------------------------------- b) pipeliner

def case_pipeliner(cleanup, rows, notes):
    res = {}
    mark = cleanup.mark()
    try:
        t = new_tern(cleanup, "capacity-pipe")
        pid = t.proc.pid
        time.sleep(0.5)
        res["rss_start"] = vm_rss_kib(pid)
        s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
        read_reply(s)
        s.setblocking(False)
        chunk = b"HELP\r\n" * 10000
        sent, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < PIPE_SECONDS:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.05)
        res["sent_kib"] = sent / 1024
        res["peak"] = b.vm_hwm_kib(pid)
        s.close()
    except (b.TernUnavailable, OSError, RuntimeError) as e:
        res["error"] = str(e)
    finally:
        cleanup.unwind(mark)
    print(f"\n== capacity: a HELP pipeliner that never reads, {PIPE_SECONDS} s")
    print(f"   sent {b.fmt(res.get('sent_kib'), '.0f')} KiB of commands before tern stopped taking them;"
          f" tern's RSS from {res.get('rss_start')} KiB to a peak of {res.get('peak')} KiB (target < 65536)")
    rows.append({"bench": "capacity", "case": "HELP pipeliner", "metric": "peak RSS KiB",
                 "reference": 65536, "tern": res.get("peak"), "ratio": b.ratio(res.get("peak"), 65536),
                 "spec": ".0f"})
    if res.get("error"):
        print("   tern: " + res["error"])
        notes.append("[pipeliner] " + b.note_line("tern", res["error"]))


# ---------------------------------------------------------------- c) tricklers

class Tricklers(threading.Thread):
    """n connections, each sending one byte of "NOOP" every TRICKLE_EVERY
    seconds (staggered) until tern drops it; records, per connection, the
    seconds from its first byte to the drop and what tern said."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.port, self.n = port, n
        self.dropped, self.replies, self.errors = [], {}, 0
        self.ready = threading.Event()

    def run(self):
        sel = selectors.DefaultSelector()
        conns = {}
        for i in range(self.n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            read_reply(s)
            s.setblocking(False)
            conns[s] = {"first": None, "next": time.monotonic() + (i % 100) * TRICKLE_EVERY / 100,
                        "i": 0, "got": b""}
            sel.register(s, selectors.EVENT_READ)
        self.ready.set()
        deadline = time.monotonic() + COMMAND_TIMEOUT * 3 + 10
        while conns and time.monotonic() < deadline:
            now = time.monotonic()
            for s, c in list(conns.items()):
                if now >= c["next"]:
                    try:
                        s.send(b"NOOP and so on and so forth"[c["i"] % 27:c["i"] % 27 + 1])
                    except OSError:
                        pass
                    if c["first"] is None:
                        c["first"] = now
                    c["i"] += 1
                    c["next"] += TRICKLE_EVERY
            for key, _ in sel.select(timeout=0.05):
                s, c = key.fileobj, conns[key.fileobj]
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                c["got"] += chunk
                if not chunk:
                    self.dropped.append(time.monotonic() - (c["first"] or time.monotonic()))
                    text = c["got"][:9].decode("latin-1")
                    self.replies[text] = self.replies.get(text, 0) + 1
                    sel.unregister(s)
                    s.close()
                    del conns[s]
        self.errors = len(conns)
        for s in conns:
            s.close()
        sel.close()


def latencies(port, seconds):
    out, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        out.append(transaction(port) * 1000)
    return out


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]


def case_tricklers(cleanup, rows, notes):
    res = {}
    mark = cleanup.mark()
    try:
        t = new_tern(cleanup, "capacity-trickle", [f"command_timeout = {COMMAND_TIMEOUT}s"])
        alone = latencies(t.port, 5)
        res["alone_med"], res["alone_p99"] = statistics.median(alone), pct(alone, 0.99)
        tr = Tricklers(t.port, TRICKLERS)
        tr.start()
        tr.ready.wait(b.TIMEOUT)
        loaded = latencies(t.port, COMMAND_TIMEOUT)
        tr.join(COMMAND_TIMEOUT * 4 + 20)
        res["load_med"], res["load_p99"] = statistics.median(loaded), pct(loaded, 0.99)
        res["load_n"], res["alone_n"] = len(loaded), len(alone)
        res["dropped"] = len(tr.dropped)
        res["drop_med"] = statistics.median(tr.dropped) if tr.dropped else None
        res["drop_max"] = max(tr.dropped) if tr.dropped else None
        res["drop_min"] = min(tr.dropped) if tr.dropped else None
        res["replies"] = tr.replies
        res["left"] = tr.errors
    except (b.TernUnavailable, OSError, RuntimeError) as e:
        res["error"] = str(e)
    finally:
        cleanup.unwind(mark)
    print(f"\n== capacity: {TRICKLERS} clients sending a byte every {TRICKLE_EVERY:.0f} s,"
          f" command_timeout {COMMAND_TIMEOUT} s, and a normal client")
    print(f"   normal client alone: median {b.fmt(res.get('alone_med'), '.2f')} ms,"
          f" p99 {b.fmt(res.get('alone_p99'), '.2f')} ms ({res.get('alone_n')} transactions)")
    print(f"   with the tricklers:  median {b.fmt(res.get('load_med'), '.2f')} ms,"
          f" p99 {b.fmt(res.get('load_p99'), '.2f')} ms ({res.get('load_n')} transactions)")
    print(f"   tricklers dropped {res.get('dropped')} of {TRICKLERS} (left open: {res.get('left')}),"
          f" from their first byte: min {b.fmt(res.get('drop_min'), '.1f')} s, median"
          f" {b.fmt(res.get('drop_med'), '.1f')} s, max {b.fmt(res.get('drop_max'), '.1f')} s;"
          f" replies {res.get('replies')}")
    add = lambda metric, target, key, spec: rows.append(
        {"bench": "capacity", "case": f"{TRICKLERS} tricklers", "metric": metric, "reference": target,
         "tern": res.get(key), "ratio": b.ratio(res.get(key), target), "spec": spec})
    add("txn ms median (ref: alone)", res.get("alone_med"), "load_med", ".2f")
    add("txn ms p99 (ref: alone)", res.get("alone_p99"), "load_p99", ".2f")
    add("drop s median (ref: timeout)", COMMAND_TIMEOUT, "drop_med", ".1f")
    add("drop s max (ref: timeout)", COMMAND_TIMEOUT, "drop_max", ".1f")
    if res.get("error"):
        print("   tern: " + res["error"])
        notes.append("[tricklers] " + b.note_line("tern", res["error"]))


def main():
    cleanup = b.Cleanup()
    rows, notes = [], []
    hard = raise_nofile()
    print(f"capacity: RLIMIT_NOFILE hard limit {hard} (per process: tern's and this client's)")
    if hard < SESSIONS + 100:
        notes.append(f"hard descriptor limit {hard} < {SESSIONS} sessions: the client cannot hold them")
    try:
        case_idle(cleanup, rows, notes)
        case_pipeliner(cleanup, rows, notes)
        case_tricklers(cleanup, rows, notes)
    finally:
        cleanup.run()
    b.save_results("capacity", rows, notes)


if __name__ == "__main__":
    main()

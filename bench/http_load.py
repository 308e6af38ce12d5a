#!/usr/bin/python3
"""Benchmark: tern's HTTPS service (/metrics and the MTA-STS policy) under
BENCH_HTTP_CLIENTS (200) concurrent clients, and what it costs the SMTP
side running at the same time.

tern alone; the reference column is the same tern without the HTTP load.
The clients behave like real ones (BENCH_HTTP_MIX=real, the default):
the /metrics ones are Prometheus-style scrapers, each on one persistent
connection (keep-alive); the MTA-STS ones open a new TLS connection per
fetch and resume their TLS session (as a fetcher that comes back would),
Connection: close.  BENCH_HTTP_MIX=close: every request a new TLS
connection with a full handshake and Connection: close (the worst case,
and what tern could only do before keep-alive).  Half the clients GET
/metrics, half GET /.well-known/mta-sts.txt on mta-sts.bench.test, from
one process at nice 19 (its CPU is reported too: on a small machine it
competes with tern for the cores).  Cases, each on a fresh tern with
[smtp] and [https] on loopback:

  http alone      the clients as fast as they go for BENCH_HTTP_SECONDS
                  (10): requests/s, p99 latency, tern's CPU ms per request
                  and its RSS (highest VmRSS sampled, VmHWM); reference:
                  tern's RSS before the load
  smtp + http R/s smtp-source sends BENCH_HTTP_MESSAGES (2000) 4 KiB
                  messages over 10 sessions to a local Maildir while the
                  clients send R requests/s in all (BENCH_HTTP_RATE, 200:
                  200 fetchers once a second; 0 skips the case); reference:
                  the same SMTP run without HTTP; the SMTP delivered/s may
                  drop by at most 5 % (issue 13); tern's CPU per message
                  (its HTTP work included) is less distorted by other load
  smtp + http max the same with the clients as fast as they go: the worst
                  case, on a machine where they share the cores with tern

Each case also gives the CPU of tern's main thread (the event loop that
SMTP and HTTP share; handshakes and commits run on workers) per request or
message, and "loop cost %": how much more loop a message costs with HTTP.

BENCH_HTTP_ROUNDS (1) runs of each SMTP case, interleaved; the median.
Env also: BENCH_HTTP_PATHS ("metrics,mta-sts": the routes taken in turn),
BENCH_HTTP_NICE (19), BENCH_SETTLE, BENCH_TIMEOUT, BENCH_KEEP.

(Not bench/http.py: with bench/ on sys.path, as every bench script and
test_interop_postfix.py have it, that name would shadow the standard
library's `http` package for everyone.)
"""

import asyncio
import concurrent.futures
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

RCPT = "bench@bench.test"
# The clients run at this niceness (BENCH_HTTP_NICE, 19) so that, on a
# machine with few cores, what the SMTP side loses is tern's work for the
# HTTP side more than the load generator's CPU; the rate they reach is
# reported.  BENCH_HTTP_NICE=0: no such help.
NICE = b.env_int("BENCH_HTTP_NICE", 19)
SIZE = 4096
SESSIONS = 10
ROUTES = {"metrics": (b"/metrics", b"bench.test"), "mta-sts": (b"/.well-known/mta-sts.txt", b"mta-sts.bench.test")}
# Which routes the clients take turns on: BENCH_HTTP_PATHS="metrics,mta-sts".
PATHS = tuple(ROUTES[p.strip()] for p in os.environ.get("BENCH_HTTP_PATHS", "metrics,mta-sts").split(","))
MIX = os.environ.get("BENCH_HTTP_MIX", "real")


# ---------------------------------------------------------------- the client
# Run as `http_load.py --client PORT CLIENTS RATE SECONDS STOPFILE`: loads tern
# until SECONDS have passed or STOPFILE exists, then prints one JSON line.

async def one_request(port, ctx, i):
    path, host = PATHS[i % len(PATHS)]
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname=host.decode())
    try:
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        data = await reader.read()          # to EOF: tern closes after the reply
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass
    if not data.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(data[:40])
    return time.monotonic() - t0


async def read_reply(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1])
    body = await reader.readexactly(n)
    return head, body


class Scraper:
    """A Prometheus-style client: one persistent connection, reopened
    only when tern closes it (its request bound or idle timeout)."""

    def __init__(self, port, ctx, path, host):
        self.port, self.ctx, self.path, self.host = port, ctx, path, host
        self.conn = None

    async def request(self):
        t0 = time.monotonic()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.ctx,
                                                          server_hostname=self.host.decode())
            reader, writer = self.conn
            try:
                writer.write(b"GET " + self.path + b" HTTP/1.1\r\nHost: " + self.host + b"\r\n\r\n")
                head, _body = await read_reply(reader)
                break
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                self.close()
                if attempt:
                    raise
        if b"connection: close" in head.lower():
            self.close()
        if not head.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(head[:40])
        return time.monotonic() - t0

    def close(self):
        if self.conn:
            self.conn[1].close()
            self.conn = None


class Fetcher:
    """An MTA-STS fetcher: a new TLS connection per fetch, resuming the
    previous TLS session (blocking sockets on a thread: asyncio cannot
    hand a session to the handshake)."""

    def __init__(self, port, ctx, path, host, pool):
        self.port, self.ctx, self.path, self.host, self.pool = port, ctx, path, host, pool
        self.session = None
        self.reused = 0

    def fetch(self):
        t0 = time.monotonic()
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        with self.ctx.wrap_socket(raw, server_hostname=self.host.decode(), session=self.session) as s:
            s.sendall(b"GET " + self.path + b" HTTP/1.1\r\nHost: " + self.host +
                      b"\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            self.reused += s.session_reused
            self.session = s.session
        if not data.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(data[:40])
        return time.monotonic() - t0

    async def request(self):
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.fetch)


async def client_main(port, clients, rate, seconds, stopfile):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    lat, errors = [], {}
    start = time.monotonic()
    end = start + seconds
    interval = clients / rate if rate else 0.0

    def stop():
        return time.monotonic() >= end or os.path.exists(stopfile)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=clients)
    ctx12 = ssl.create_default_context()          # TLS 1.2: the session is there after the handshake
    ctx12.check_hostname = False
    ctx12.verify_mode = ssl.CERT_NONE
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    actors = {}

    async def real_request(k):
        if k not in actors:
            path, host = PATHS[k % len(PATHS)]
            actors[k] = (Scraper(port, ctx, path, host) if path == b"/metrics"
                         else Fetcher(port, ctx12, path, host, pool))
        return await actors[k].request()

    async def worker(k):
        i = k
        nxt = start + (interval * k / clients if interval else 0)
        while not stop():
            if interval:
                delay = nxt - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(min(delay, 0.5))
                    continue
                nxt += interval
            try:
                if MIX == "real":
                    lat.append(await asyncio.wait_for(real_request(k), 30))
                else:
                    lat.append(await asyncio.wait_for(one_request(port, ctx, i), 30))
            except Exception as exc:       # noqa: BLE001 - counted, not fatal
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
            i += 1

    await asyncio.gather(*(worker(k) for k in range(clients)))
    wall = time.monotonic() - start
    for a in actors.values():
        if isinstance(a, Scraper):
            a.close()
    pool.shutdown(wait=False)
    reused = sum(a.reused for a in actors.values() if isinstance(a, Fetcher))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    lat.sort()
    return {"requests": len(lat), "wall": wall, "errors": errors,
            "p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
            "client_cpu_s": ru.ru_utime + ru.ru_stime, "resumed": reused}


def client_entry(argv):
    port, clients, rate, seconds = int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    res = asyncio.run(client_main(port, clients, rate, seconds, argv[4]))
    print(json.dumps(res), flush=True)


class Load:
    """The client process, started against a running tern."""

    def __init__(self, cleanup, workdir, port, clients, rate, seconds):
        self.stopfile = os.path.join(workdir, f"stop-{port}")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--client", str(port), str(clients), str(rate),
             str(seconds), self.stopfile], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=lambda: os.nice(NICE))
        cleanup.push(self.kill)

    def finish(self, timeout=60):
        with open(self.stopfile, "w"):
            pass
        return self.wait(timeout)

    def wait(self, timeout):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return {"error": "the HTTP clients did not stop"}
        try:
            return json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"error": "HTTP clients failed: " + err.decode("utf-8", "replace")[-300:]}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- measuring

class RssSampler(threading.Thread):
    """The highest VmRSS of pid, sampled every 100 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.max_kib, self.done = pid, 0, threading.Event()
        self.start()

    def run(self):
        while not self.done.wait(0.1):
            self.max_kib = max(self.max_kib, rss_kib(self.pid) or 0)

    def stop(self):
        self.done.set()
        self.join()
        return self.max_kib or None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def start_tern(cleanup, tag):
    wd = b.make_workdir(cleanup, tag)
    https = b.free_port()
    t = b.Tern(cleanup, wd, extra=["[https]", f"listen = 127.0.0.1:{https}"])
    t.start()
    t.https_port = https
    return wd, t


def http_result(res, out):
    if res.get("error"):
        out["error"] = res["error"]
        return
    out["req_s"] = res["requests"] / res["wall"] if res["wall"] else None
    out["p99_ms"] = res["p99_ms"]
    out["client_cpu_ms"] = res["client_cpu_s"] * 1000 / max(res["requests"], 1)
    if res.get("resumed"):
        b.log(f"http_load: {res['resumed']} MTA-STS fetches resumed their TLS session")
    if res["errors"]:
        out["error"] = "HTTP errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(res["errors"].items()))


def run_http_alone(cleanup, clients, seconds):
    mark = cleanup.mark()
    try:
        wd, t = start_tern(cleanup, "http")
        pid = t.proc.pid
        idle = {"rss_kib": rss_kib(pid)}
        sampler = RssSampler(pid)
        cpu0, loop0 = b.tree_cpu(pid), b.loop_cpu(pid)
        load = Load(cleanup, wd, t.https_port, clients, 0, seconds)
        res = load.wait(seconds + 60)
        cpu1, loop1 = b.tree_cpu(pid), b.loop_cpu(pid)
        out = {"rss_kib": sampler.stop(), "hwm_kib": b.vm_hwm_kib(pid)}
        http_result(res, out)
        if cpu0 is not None and cpu1 is not None and res.get("requests"):
            out["cpu_ms"] = (cpu1 - cpu0) * 1000 / res["requests"]
        if loop0 is not None and loop1 is not None and res.get("requests"):
            out["loop_ms"] = (loop1 - loop0) * 1000 / res["requests"]
        if not t.alive():
            out["error"] = "tern exited during the run\n" + b.tail(t.log)
        return idle, out
    finally:
        cleanup.unwind(mark)


def run_smtp(cleanup, n, clients, rate):
    """One SMTP run on a fresh tern; rate None: no HTTP load, 0: clients
    at full speed."""
    mark = cleanup.mark()
    try:
        wd, t = start_tern(cleanup, "smtp-http")
        pid = t.proc.pid
        out = {"error": None}
        b.settle()
        load = None
        if rate is not None:
            load = Load(cleanup, wd, t.https_port, clients, rate, b.TIMEOUT)
            time.sleep(1.0)            # the clients are up and running
        sampler = RssSampler(pid)
        cpu0, loop0 = b.tree_cpu(pid), b.loop_cpu(pid)
        t0 = time.monotonic()
        wall, err = b.smtp_source(t.port, n, SESSIONS, SIZE, RCPT)
        out["error"] = err
        if not err:
            out["accepted_s"] = n / wall
        done, count = b.wait_for(lambda: b.count_dir(t.maildir_new), n, t0)
        if done is not None:
            out["delivered_s"] = n / done
        elif not err:
            out["error"] = f"only {count} of {n} delivered (gave up waiting)"
        cpu1, loop1 = b.tree_cpu(pid), b.loop_cpu(pid)
        if cpu0 is not None and cpu1 is not None:
            out["cpu_ms"] = (cpu1 - cpu0) * 1000 / n
        if loop0 is not None and loop1 is not None:
            out["loop_ms"] = (loop1 - loop0) * 1000 / n
        if load:
            http_result(load.finish(), out)
        out["rss_kib"] = sampler.stop()
        if not t.alive():
            out["error"] = "tern exited during the run\n" + b.tail(t.log)
        return out
    finally:
        cleanup.unwind(mark)


def median_of(results, keys):
    out = {"error": next((r["error"] for r in results if r.get("error")), None)}
    for k in keys:
        vals = [r[k] for r in results if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    return out


HTTP_METRICS = [("requests/s", "req_s", ".0f"), ("p99 ms", "p99_ms", ".1f"),
                ("tern CPU ms/req", "cpu_ms", ".2f"), ("loop CPU ms/req", "loop_ms", ".2f"),
                ("client CPU ms/req", "client_cpu_ms", ".2f"),
                ("max RSS MiB", "rss_kib", ".1f"), ("peak RSS MiB (HWM)", "hwm_kib", ".1f")]
SMTP_METRICS = [("accepted/s", "accepted_s", ".0f"), ("delivered/s", "delivered_s", ".0f"),
                ("SMTP cost %", "cost", ".1f"), ("tern CPU ms/msg", "cpu_ms", ".2f"),
                ("loop CPU ms/msg", "loop_ms", ".2f"), ("loop cost %", "loop_cost", ".1f"),
                ("HTTP requests/s", "req_s", ".0f"),
                ("HTTP p99 ms", "p99_ms", ".1f"), ("max RSS MiB", "rss_kib", ".1f")]


def main():
    n = b.env_int("BENCH_HTTP_MESSAGES", 2000)
    clients = b.env_int("BENCH_HTTP_CLIENTS", 200)
    seconds = b.env_int("BENCH_HTTP_SECONDS", 10)
    rate = b.env_int("BENCH_HTTP_RATE", 200)
    rounds = max(1, b.env_int("BENCH_HTTP_ROUNDS", 1))
    cleanup = b.Cleanup()
    rows, notes = [], []
    print(f"http_load: {clients} clients ({MIX} mix); SMTP {n} x 4 KiB over {SESSIONS} sessions, "
          f"{b.mode_label()}, {rounds} round(s)")
    try:
        b.log(f"http_load: {clients} clients for {seconds} s ...")
        try:
            idle, res = run_http_alone(cleanup, clients, seconds)
        except b.TernUnavailable as exc:
            idle, res = {}, {"error": f"not available: {exc}"}
        b.report_case("http_load", f"{clients} clients", f"http_load: {clients} clients, alone ({seconds} s;"
                      " reference: tern idle)", "idle", HTTP_METRICS, idle, res, rows, notes,
                      width=20, scale={"rss_kib": 1024, "hwm_kib": 1024})
        modes = [("max", 0)] + ([(f"{rate}/s", rate)] if rate > 0 else [])
        for label, r in reversed(modes):
            base, loaded = [], []
            for rnd in range(rounds):
                order = ("with", "alone") if rnd % 2 else ("alone", "with")
                for who in order:
                    b.log(f"http_load: smtp {'+ http ' + label if who == 'with' else 'alone'}"
                          f" ({rnd + 1}/{rounds}) ...")
                    try:
                        res = run_smtp(cleanup, n, clients, r if who == "with" else None)
                    except b.TernUnavailable as exc:
                        res = {"error": f"not available: {exc}"}
                    (loaded if who == "with" else base).append(res)
            keys = [k for _l, k, _s in SMTP_METRICS if k not in ("cost", "loop_cost")]
            ref, got = median_of(base, keys), median_of(loaded, keys)
            if ref.get("delivered_s") and got.get("delivered_s"):
                got["cost"] = (1 - got["delivered_s"] / ref["delivered_s"]) * 100
            # What the HTTP side takes from the loop that SMTP runs on:
            # the share of the loop's time per message that is HTTP's.
            if ref.get("loop_ms") and got.get("loop_ms"):
                got["loop_cost"] = (got["loop_ms"] / ref["loop_ms"] - 1) * 100
            ref["cost"] = 5.0 if label != "max" else None     # the target of issue 13
            b.report_case("http_load", f"smtp+http {label}",
                          f"http_load: SMTP with {clients} HTTPS clients at {label}"
                          f" (reference: SMTP alone; cost target < 5 %)"
                          + (f", median of {rounds}" if rounds > 1 else ""),
                          "no HTTP", SMTP_METRICS, ref, got, rows, notes, width=16,
                          scale={"rss_kib": 1024})
    finally:
        cleanup.run()
    b.save_results("http_load", rows, notes)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_entry(sys.argv[2:])
    else:
        main()

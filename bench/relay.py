#!/usr/bin/python3
"""Benchmark: relaying through a smarthost, Postfix vs tern.

Each system gets its own smtp-sink on a free port (smtp-sink -c -M N counts
arrivals and exits at the N-th), and is configured to relay everything
non-local to it (Postfix: relayhost = [127.0.0.1]:SINK, tern: [relay]
smarthost). smtp-source sends N messages for bench@relay.test. Reported:
accepted/s (N / smtp-source wall time), relayed/s (N / time until the sink
has all N) and CPU ms per message of the relaying server's process tree.

Env: BENCH_RELAY_MESSAGES (default: BENCH_MESSAGES or 5000),
BENCH_RELAY_SIZE (4096), BENCH_RELAY_SESSIONS (10), BENCH_TIMEOUT,
BENCH_STALL_TIMEOUT, BENCH_KEEP.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

RCPT = "bench@relay.test"


def measure(cleanup, wd, n, size, sessions, make_server):
    res = {"accepted_s": None, "relayed_s": None, "cpu_ms": None,
           "error": None, "relayed": 0}
    sink = b.Sink(cleanup, wd, n)
    port, pid, server = make_server(sink.port)
    b.settle()
    cpu0 = b.tree_cpu(pid)
    t0 = time.monotonic()
    wall, err = b.smtp_source(port, n, sessions, size, RCPT)
    if err:
        res["error"] = err
    else:
        res["accepted_s"] = n / wall
    done, count = b.wait_for(sink.received, n, t0)
    cpu1 = b.tree_cpu(pid)
    res["relayed"] = count
    if done is not None:
        res["relayed_s"] = n / done
    elif not res["error"]:
        res["error"] = (f"only {count} of {n} reached the sink "
                        f"(gave up after {b.STALL}s without progress)")
    if cpu0 is not None and cpu1 is not None and count:
        res["cpu_ms"] = (cpu1 - cpu0) * 1000 / count
    return res, server


def run_postfix(cleanup, n, size, sessions):
    mark = cleanup.mark()
    try:
        wd = b.make_workdir(cleanup, "pfrelay")

        def make(sink_port):
            pf = b.Postfix(cleanup, wd, "relay", sink_port=sink_port)
            pf.start()
            return pf.port, pf.master_pid(), pf
        return measure(cleanup, wd, n, size, sessions, make)[0]
    except Exception as exc:
        return {"error": f"Postfix: {exc}"}
    finally:
        cleanup.unwind(mark)


def run_tern(cleanup, n, size, sessions):
    mark = cleanup.mark()
    try:
        wd = b.make_workdir(cleanup, "ternrelay")

        def make(sink_port):
            t = b.Tern(cleanup, wd, sink_port=sink_port)
            t.start()
            return t.port, t.proc.pid, t
        res, t = measure(cleanup, wd, n, size, sessions, make)
        if res["relayed"] == 0:
            res["error"] = "tern relay: not available (" + (res["error"] or "") + ")"
        if not t.alive():
            res["error"] = (res["error"] or "") + " tern exited during the run\n" \
                + b.tail(t.log)
        return res
    except b.TernUnavailable as exc:
        return {"error": f"tern relay: not available: {exc}"}
    finally:
        cleanup.unwind(mark)


METRICS = [("accepted/s", "accepted_s", ".0f"),
           ("relayed/s", "relayed_s", ".0f"),
           ("CPU ms/msg", "cpu_ms", ".2f")]


def main():
    n = b.env_int("BENCH_RELAY_MESSAGES", b.env_int("BENCH_MESSAGES", 5000))
    size = b.env_int("BENCH_RELAY_SIZE", 4096)
    sessions = b.env_int("BENCH_RELAY_SESSIONS", 10)
    cleanup = b.Cleanup()
    rows, notes = [], []
    case = f"{n}x{size // 1024}KiB s={sessions}"
    try:
        b.log(f"relay: {case}: Postfix ...")
        ref = run_postfix(cleanup, n, size, sessions)
        b.log(f"relay: {case}: tern ...")
        tern = run_tern(cleanup, n, size, sessions)
    finally:
        cleanup.run()
    b.report_case("relay", case, f"relay: {case}", "Postfix", METRICS, ref, tern, rows, notes)
    b.save_results("relay", rows, notes)


if __name__ == "__main__":
    main()

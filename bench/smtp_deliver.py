#!/usr/bin/python3
"""Benchmark: SMTP receive + local Maildir delivery, Postfix vs tern.

smtp-source sends N messages to bench@bench.test at a given size and
concurrency; each system runs fresh for each case. Reported per case and
system: accepted/s (N / smtp-source wall time), delivered/s (N / time until
all N files are in the Maildir's new/), CPU ms per message (user+system of
the server's whole process tree / N) and tern's peak RSS (VmHWM).

Env: BENCH_MESSAGES (default 5000), BENCH_SMTP_CASES (default
"4096x1,4096x10,4096x50,102400x10": SIZExSESSIONS), BENCH_TIMEOUT,
BENCH_STALL_TIMEOUT, BENCH_REUSE_CONN (smtp-source -d), BENCH_KEEP,
BENCH_SETTLE (pause before each run, default 65 s), BENCH_CHURN=1 (no
pause, each work dir removed right after its run: steady churn as on a busy
server), BENCH_SMTP_ROUNDS (default 1: runs per case and system, the two
systems interleaved with the first alternating; the median is shown).
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

RCPT = "bench@bench.test"
CASES = os.environ.get("BENCH_SMTP_CASES", "4096x1,4096x10,4096x50,102400x10")


def parse_cases(text):
    cases = []
    for item in text.split(","):
        size, sessions = item.strip().lower().split("x")
        cases.append((int(size), int(sessions)))
    return cases


def size_label(size):
    return f"{size // 1024}KiB" if size % 1024 == 0 else f"{size}B"


def measure(server_pid, port, maildir_new, n, size, sessions, pid_for_rss=None):
    """Drive one running server; returns a result dict."""
    res = {"accepted_s": None, "delivered_s": None, "cpu_ms": None,
           "rss_kib": None, "error": None, "delivered": 0}
    b.settle()
    cpu0 = b.tree_cpu(server_pid)
    t0 = time.monotonic()
    wall, err = b.smtp_source(port, n, sessions, size, RCPT)
    if err:
        res["error"] = err
    else:
        res["accepted_s"] = n / wall
    done, count = b.wait_for(lambda: b.count_dir(maildir_new), n, t0)
    res["delivered"] = count
    if done is not None:
        res["delivered_s"] = n / done
    elif not res["error"]:
        res["error"] = f"only {count} of {n} delivered (gave up waiting)"
    cpu1 = b.tree_cpu(server_pid)
    if cpu0 is not None and cpu1 is not None and count:
        res["cpu_ms"] = (cpu1 - cpu0) * 1000 / max(count, 1)
    if pid_for_rss:
        res["rss_kib"] = b.vm_hwm_kib(pid_for_rss)
    return res


def run_postfix(cleanup, n, size, sessions):
    mark = cleanup.mark()
    try:
        wd = b.make_workdir(cleanup, "pf")
        pf = b.Postfix(cleanup, wd, "virtual")
        pf.start()
        return measure(pf.master_pid(), pf.port, pf.maildir_new, n, size, sessions)
    except Exception as exc:
        return {"error": f"Postfix: {exc}"}
    finally:
        cleanup.unwind(mark)


def run_tern(cleanup, n, size, sessions):
    mark = cleanup.mark()
    try:
        wd = b.make_workdir(cleanup, "tern")
        t = b.Tern(cleanup, wd)
        t.start()
        res = measure(t.proc.pid, t.port, t.maildir_new, n, size, sessions,
                      pid_for_rss=t.proc.pid)
        if not t.alive():
            res["error"] = (res.get("error") or "") + " tern exited during the run"
            res["error"] += "\n" + b.tail(t.log)
        return res
    finally:
        cleanup.unwind(mark)


METRICS = [("accepted/s", "accepted_s", ".0f"),
           ("delivered/s", "delivered_s", ".0f"),
           ("CPU ms/msg", "cpu_ms", ".2f"),
           ("peak RSS MiB", "rss_kib", ".1f")]


def median_result(results):
    """One result from several runs of one system: the median of each
    figure over the runs that have it; the first error, if any."""
    out = {"error": next((r["error"] for r in results if r.get("error")), None)}
    for _label, key, _spec in METRICS:
        vals = [r[key] for r in results if r.get(key) is not None]
        out[key] = statistics.median(vals) if vals else None
    return out


def main():
    n = b.env_int("BENCH_MESSAGES", 5000)
    rounds = max(1, b.env_int("BENCH_SMTP_ROUNDS", 1))
    cleanup = b.Cleanup()
    rows, notes = [], []
    tern_gone = None
    flip = False
    print(f"smtp_deliver: {b.mode_label()}, {rounds} round(s) per case")
    try:
        for size, sessions in parse_cases(CASES):
            case = f"{n}x{size_label(size)} s={sessions}"
            if b.CHURN:
                case += " churn"
            refs, terns = [], []
            for rnd in range(rounds):
                order = ("tern", "pf") if flip else ("pf", "tern")
                flip = not flip
                for who in order:
                    if who == "pf":
                        b.log(f"smtp_deliver: {case}: Postfix ({rnd + 1}/{rounds}) ...")
                        refs.append(run_postfix(cleanup, n, size, sessions))
                    elif tern_gone:
                        terns.append({"error": tern_gone})
                    else:
                        b.log(f"smtp_deliver: {case}: tern ({rnd + 1}/{rounds}) ...")
                        try:
                            terns.append(run_tern(cleanup, n, size, sessions))
                        except b.TernUnavailable as exc:
                            terns.append({"error": f"not available: {exc}"})
                            tern_gone = "not available (see the first case)"
            heading = f"smtp_deliver: {case}" + (f" (median of {rounds})" if rounds > 1 else "")
            b.report_case("smtp_deliver", case, heading, "Postfix", METRICS,
                          median_result(refs), median_result(terns),
                          rows, notes, scale={"rss_kib": 1024})
    finally:
        cleanup.run()
    b.save_results("smtp_deliver", rows, notes)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Benchmark: the MX defences.  (1) SMTP receive + Maildir delivery
through the same rspamd milter (a private instance, proxy worker in milter
mode, self_scan), tern vs Postfix with smtpd_milters, in the same run;
(2) tern with greylisting and a DNS blocklist on (answers cached: the
client passed greylisting once, its blocklist answer is in the cache;
dnsmasq on loopback) vs off.

smtp-source sends N messages of SIZE octets over SESSIONS connections to
bench@bench.test.  Reported: delivered/s (N / time until all are in the
Maildir's new/), CPU ms per message of the server's whole process tree
(tern's one process; Postfix's master and every child: smtpd, cleanup,
qmgr, virtual, ...) and of rspamd's.

Env: BENCH_MESSAGES (default 2000), BENCH_MILTER_CASE (default "4096x10":
SIZExSESSIONS), BENCH_MILTER_PARTS (default "rspamd,mxchecks"),
BENCH_MXCHECKS_ROUNDS (default 3: off and on runs interleaved, the first
alternating; the median of each figure is shown), BENCH_SETTLE (pause
before each run, as smtp_deliver), BENCH_TIMEOUT, BENCH_KEEP.
"""

import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402
import smtp_deliver as sd  # noqa: E402

RCPT = sd.RCPT
RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


class Rspamd:
    """A private rspamd on 127.0.0.1, its DNS the bench's dnsmasq (every
    name answered at once, from nothing: no lookup leaves the machine,
    and none waits for a timeout - Postfix passes the client's name,
    localhost, which rspamd looks up; tern passes none)."""

    def __init__(self, cleanup, workdir, dns_port):
        self.cleanup = cleanup
        self.base = os.path.join(workdir, "rspamd")
        self.log = os.path.join(self.base, "log", "rspamd.log")
        self.port = b.free_port()
        self.args = b.rspamd_setup(self.base, self.port, dns_port, count=max(1, os.cpu_count() or 1))
        self.proc = None

    def start(self):
        if not os.access(RSPAMD, os.X_OK):
            raise RuntimeError("rspamd not installed (scripts/setup.sh)")
        self.out = open(os.path.join(self.base, "stdout"), "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.out, stderr=self.out, start_new_session=True)
        self.cleanup.push(self.stop)
        deadline = time.monotonic() + 240   # the first start compiles its expressions
        while time.monotonic() < deadline:
            try:
                import socket
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.5)
        raise RuntimeError("rspamd did not listen\n" + b.tail(self.log))

    def cpu(self):
        return b.tree_cpu(self.proc.pid) if self.proc else None

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        self.out.close()
        self.proc = None


class Dnsmasq:
    """dnsmasq on loopback answering every name from nothing (NXDOMAIN):
    the blocklist lists no one."""

    def __init__(self, cleanup):
        self.port = b.free_port()
        self.proc = subprocess.Popen([DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                                      "--conf-file=/dev/null", "--listen-address=127.0.0.1",
                                      "--bind-interfaces", "--pid-file=", "--user=", f"--port={self.port}",
                                      "--local=/#/"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cleanup.push(self.stop)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError("dnsmasq did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None


def with_rspamd_cpu(rspamd, fn):
    c0 = rspamd.cpu()
    res = fn()
    c1 = rspamd.cpu()
    if c0 is not None and c1 is not None and res.get("delivered"):
        res["rspamd_ms"] = (c1 - c0) * 1000 / res["delivered"]
    return res


def run_postfix(cleanup, rspamd, n, size, sessions):
    mark = cleanup.mark()
    try:
        pf = b.Postfix(cleanup, b.make_workdir(cleanup, "pf-milter"), "virtual")
        pf._postconf("-e", f"smtpd_milters = inet:127.0.0.1:{rspamd.port}", "milter_protocol = 6",
                     "milter_default_action = tempfail", "milter_command_timeout = 60s",
                     "milter_content_timeout = 60s")
        pf.start()
        return with_rspamd_cpu(rspamd, lambda: sd.measure(pf.master_pid(), pf.port, pf.maildir_new, n, size,
                                                          sessions))
    except Exception as exc:
        return {"error": f"Postfix: {exc}"}
    finally:
        cleanup.unwind(mark)


def untrusted(t):
    """The bench's client out of trusted_networks: the MX checks apply."""
    with open(t.conf) as f:
        text = f.read()
    with open(t.conf, "w") as f:
        f.write(text.replace("trusted_networks = 127.0.0.0/8", "trusted_networks = 10.255.0.0/16"))


def run_tern(cleanup, n, size, sessions, extra, prepare=None, rspamd=None, checked=None):
    """checked: log events that must be in the log once per message of
    the run (the MX checks did run, and passed the bench's mail)."""
    mark = cleanup.mark()
    try:
        t = b.Tern(cleanup, b.make_workdir(cleanup, "tern-milter"), extra=extra)
        if prepare:
            prepare(t)
        t.start()
        if prepare:
            warm_up(t)
        go = lambda: sd.measure(t.proc.pid, t.port, t.maildir_new, n, size, sessions,  # noqa: E731
                                pid_for_rss=t.proc.pid)
        res = with_rspamd_cpu(rspamd, go) if rspamd else go()
        if not t.alive():
            res["error"] = (res.get("error") or "") + " tern exited during the run\n" + b.tail(t.log)
        for event in checked or ():
            with open(t.log, errors="replace") as f:
                seen = f.read().count(event)
            if seen < n and not res.get("error"):
                res["error"] = f"only {seen} '{event}' in the log for {n} messages: the checks did not run"
        return res
    except b.TernUnavailable as exc:
        return {"error": f"not available: {exc}"}
    finally:
        cleanup.unwind(mark)


def warm_up(t):
    """One message through the checks before the run: greylisted once,
    then passed (the client address is known from then on), and the
    blocklist's answer for 127.0.0.1 cached."""
    for attempt in range(2):
        with smtplib.SMTP("127.0.0.1", t.port, local_hostname="source.test", timeout=30) as c:
            c.ehlo()
            c.mail("bench@source.test")
            code, _ = c.rcpt(RCPT)
            if code == 250:
                c.data(b"Subject: warm-up\r\n\r\nwarm-up\r\n")
                break
    # the warm-up message is one more in new/: the run counts from it
    deadline = time.monotonic() + 30
    while b.count_dir(t.maildir_new) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    for name in os.listdir(t.maildir_new):
        os.unlink(os.path.join(t.maildir_new, name))


METRICS = [("delivered/s", "delivered_s", ".0f"),
           ("CPU ms/msg", "cpu_ms", ".2f"),
           ("rspamd CPU ms/msg", "rspamd_ms", ".2f")]
CHECK_METRICS = [("delivered/s", "delivered_s", ".0f"),
                 ("CPU ms/msg", "cpu_ms", ".2f")]


def median_of(results):
    """The median of each figure over the runs that have it; the first
    error, if any."""
    out = {"error": next((r["error"] for r in results if r.get("error")), None)}
    for _label, key, _spec in CHECK_METRICS:
        vals = [r[key] for r in results if r.get(key) is not None]
        out[key] = statistics.median(vals) if vals else None
    return out


def run_mxchecks(cleanup, dns, n, size, sessions, rounds, label, rows, notes):
    """Greylisting and the blocklist off and on, interleaved; the cost
    of turning them on, in CPU per message and in delivered/s."""
    # the same DNS server for both, SPF, DKIM and DMARC off in both:
    # only greylisting and the blocklist differ
    common = ["[dns]", f"servers = 127.0.0.1:{dns.port}",
              "[checks]", "spf = off", "dkim = off", "dmarc = off"]
    on_extra = common + ["[dnsbl]", "zones = bl.test", "[greylist]", "enabled = yes", "delay = 0s"]
    # every RCPT is greylisted (known client) and every session asks the
    # blocklist (its cache answers)
    on_events = ("event=greylist session=", )
    runs = {"off": [], "on": []}
    for rnd in range(rounds):
        for which in (("off", "on") if rnd % 2 == 0 else ("on", "off")):
            b.log(f"milter: {label}: tern, greylisting and DNSBL {which} ({rnd + 1}/{rounds}) ...")
            if which == "off":
                runs["off"].append(run_tern(cleanup, n, size, sessions, common, prepare=untrusted))
            else:
                runs["on"].append(run_tern(cleanup, n, size, sessions, on_extra, prepare=untrusted,
                                           checked=on_events))
    for which in ("off", "on"):
        print(f"   {which}: " + "; ".join(f"{b.fmt(r.get('delivered_s'), '.0f')}/s "
                                         f"{b.fmt(r.get('cpu_ms'), '.3f')} ms/msg" for r in runs[which]))
    off, on = median_of(runs["off"]), median_of(runs["on"])
    heading = f"mxchecks: {label}, tern: greylisting + DNSBL on vs off" + \
        (f" (median of {rounds})" if rounds > 1 else "")
    b.report_case("mxchecks", label, heading, "off", CHECK_METRICS, off, on, rows, notes)
    cpu = b.ratio(on.get("cpu_ms"), off.get("cpu_ms"))
    rate = b.ratio(on.get("delivered_s"), off.get("delivered_s"))
    print(f"   on against off (the cost: at most 10 %): CPU per message"
          f" {b.fmt(None if cpu is None else (cpu - 1) * 100, '+.1f')} %,"
          f" delivered/s {b.fmt(None if rate is None else (rate - 1) * 100, '+.1f')} %")


def main():
    n = b.env_int("BENCH_MESSAGES", 2000)
    parts = [p.strip() for p in os.environ.get("BENCH_MILTER_PARTS", "rspamd,mxchecks").split(",")]
    rounds = max(1, b.env_int("BENCH_MXCHECKS_ROUNDS", 3))
    size, sessions = sd.parse_cases(os.environ.get("BENCH_MILTER_CASE", "4096x10"))[0]
    label = f"{n}x{sd.size_label(size)} s={sessions}"
    cleanup = b.Cleanup()
    rows, notes = [], []
    print(f"milter: {b.mode_label()}")
    try:
        try:
            dns = Dnsmasq(cleanup)
        except Exception as exc:
            dns = None
            notes.append(f"[{label}] dnsmasq: {exc}")
        rspamd = None
        try:
            if "rspamd" in parts:
                rspamd = Rspamd(cleanup, b.make_workdir(cleanup, "rspamd"), dns.port if dns else b.free_port())
                b.log("milter: starting rspamd (its first start compiles for up to a minute) ...")
                rspamd.start()
        except Exception as exc:
            rspamd = None
            notes.append(f"[{label}] rspamd: {exc}".splitlines()[0])
        if rspamd:
            b.log(f"milter: {label}: Postfix + rspamd ...")
            ref = run_postfix(cleanup, rspamd, n, size, sessions)
            b.log(f"milter: {label}: tern + rspamd ...")
            tern = run_tern(cleanup, n, size, sessions,
                            ["[milter]", f"servers = inet:127.0.0.1:{rspamd.port}", "timeout = 60s"],
                            rspamd=rspamd)
            b.report_case("milter", label + " rspamd", f"milter: {label} through rspamd", "Postfix",
                          METRICS, ref, tern, rows, notes)
            rspamd.stop()
        if dns and "mxchecks" in parts:
            run_mxchecks(cleanup, dns, n, size, sessions, rounds, label, rows, notes)
    finally:
        cleanup.run()
    b.save_results("milter", rows, notes)


if __name__ == "__main__":
    main()

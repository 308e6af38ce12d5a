#!/usr/bin/python3
"""Benchmark: IMAP, Dovecot 2.3 imapd vs tern, over the same Maildir.

A Maildir is built once: INBOX with N messages of about 4 KiB (LF line
ends, in cur/, every 4th a multipart/alternative, every 10th with the
word "needle" in its body), a folder Big with B messages of 1 MiB, and
Archive, Sent, Drafts, Trash, Junk empty.  Each server gets its own copy and is started fresh; then
one raw-socket client (no parsing beyond the tagged reply) times, in
this order, on the same server:
  a) login + SELECT INBOX, cold (the server's first look: tern writes
     its state file, Dovecot its index) and warm (median of 3)
  b) FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)
  c) BODY.PEEK[] of the first F messages (4 KiB) and of Big's B (1 MiB), MB/s
  d) SEARCH TEXT "needle" over INBOX
  e) STORE 1:* +FLAGS (\\Seen)
  f) MOVE 1:M Archive
  g) S sessions in IDLE on INBOX: a message dropped into new/ (tmp/ then
     rename, as a delivery agent does) five times; the time from the
     rename to each session's "* n EXISTS" (median, p99), and the
     server's memory per idle session (PSS of its whole process tree,
     with the sessions minus without, / S)
Each figure carries the server's CPU (its process tree) for the case.

Env: BENCH_IMAP_MESSAGES (10000), BENCH_IMAP_FETCH (1000), BENCH_IMAP_BIG
(100), BENCH_IMAP_MOVE (1000), BENCH_IMAP_IDLE (1000), BENCH_IMAP_ONLY
(tern or dovecot: that one alone), BENCH_TIMEOUT, BENCH_KEEP.
"""

import os
import re
import resource
import selectors
import shutil
import socket
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

USER, PASSWORD = "bench@bench.test", "benchpw"
DELIVERIES = 5


# ---------------------------------------------------------------- the Maildir

def message(i, size):
    head = (f"Return-Path: <bench@source.test>\nFrom: Bench Sender <bench@source.test>\n"
            f"To: {USER}\nSubject: imap bench message {i}\n"
            f"Message-ID: <imap-{i}@source.test>\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n")
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
    if i % 10 == 0:
        words = words.replace("amet", "needle")
    lines, left, n = [], size - len(head) - 200, 0
    while left > 0:
        line = f"{i:06d}-{n:05d} {words}"[:min(left, 76)] + "\n"
        lines.append(line)
        left -= len(line)
        n += 1
    text = "".join(lines)
    if i % 4 == 0:
        half = len(lines) // 2
        body = ("MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=BB\n\n"
                "--BB\nContent-Type: text/plain; charset=us-ascii\n\n" + "".join(lines[:half]) +
                "--BB\nContent-Type: text/html; charset=us-ascii\n\n<p>" + "".join(lines[half:]) +
                "</p>\n--BB--\n")
    else:
        body = "Content-Type: text/plain; charset=us-ascii\n\n" + text
    return head + body


def make_maildir(root, n, big):
    # the special-use folders a first login makes exist already (as in any
    # Maildir a client has used): "cold" is the first look at INBOX, not
    # tern's one-time set-up of a new user
    folders = [("", n, 4096), (".Big", big, 1 << 20)] + \
        [("." + f, 0, 0) for f in ("Archive", "Sent", "Drafts", "Trash", "Junk")]
    for folder, count, size in folders:
        d = os.path.join(root, folder) if folder else root
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub))
        if folder:
            open(os.path.join(d, "maildirfolder"), "w").close()
        for i in range(count):
            name = f"{1700000000 + i}.M{i:06d}P1.bench.test:2,"
            with open(os.path.join(d, "cur", name), "w") as f:
                f.write(message(i, size))
            os.utime(os.path.join(d, "cur", name), (1700000000 + i, 1700000000 + i))
    with open(os.path.join(root, "subscriptions"), "w") as f:
        f.write("Big\nArchive\nSent\nDrafts\nTrash\nJunk\n")


def copy_maildir(src, dst, owner=None):
    shutil.copytree(src, dst)
    if owner:
        top = dst
        while os.path.basename(os.path.dirname(top)) != "mail":
            top = os.path.dirname(top)
        b.chown_tree(top, *owner)


# ---------------------------------------------------------------- servers

class DovecotImap(b.DovecotInstance):
    """A private Dovecot imapd on 127.0.0.1 (plaintext, passwd-file), the
    user's Maildir at ROOT/%d/%n/Maildir with "/" as separator, limits
    raised for the IDLE sessions."""

    def __init__(self, cleanup, workdir, sessions):
        super().__init__(cleanup, os.path.join(workdir, "dovecot"))
        self.port = b.free_port()
        root = os.path.join(self.dir, "mail")
        self.maildir = os.path.join(root, "bench.test", "bench", "Maildir")
        uid, gid = b.ensure_user()
        os.makedirs(root)
        passwd = b.dovecot_passwd(self.dir, USER, PASSWORD, uid, gid, os.path.dirname(self.maildir))
        limit = sessions + 100
        self.write_conf(b.dovecot_conf(self.dir, passwd, "imap", uid=uid, mail_location="maildir:~/Maildir",
                                       extra=f"""\
default_process_limit = {limit}
default_client_limit = {limit * 2}
namespace inbox {{
  inbox = yes
  separator = /
}}
protocol imap {{
  mail_max_userip_connections = {limit}
}}
""", services=b.dovecot_imap_listener(self.port) + f"""\
service imap {{
  process_limit = {limit}
}}
"""))

    def ready(self):
        return b.wait_banner(self.port, b"* OK", b.READY_TIMEOUT, self.proc)

    def start(self):
        self.launch("did not greet")


def start_dovecot(cleanup, wd, src, sessions):
    d = DovecotImap(cleanup, wd, sessions)
    copy_maildir(src, d.maildir, owner=b.ensure_user())
    d.start()
    return d.port, d.maildir, d.proc.pid


def start_tern(cleanup, wd, src, sessions):
    port = b.free_port()
    t = b.Tern(cleanup, wd, extra=["[imap]", f"listen = 127.0.0.1:{port}",
                                   "[auth]", "allow_plaintext = yes",
                                   "[smtp]", f"max_connections = {sessions + 100}",
                                   f"max_connections_per_ip = {sessions + 100}"])
    copy_maildir(src, t.maildir)
    t.start()
    if not b.wait_banner(port, b"* OK", 5, t.proc):
        raise b.TernUnavailable("IMAP listener does not greet")
    return port, t.maildir, t.proc.pid


# ---------------------------------------------------------------- the client

class Client:
    """One raw IMAP connection: a command, then bytes until its tagged reply."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=b.TIMEOUT)
        self.buf = bytearray()
        self.n = 0
        self._until(b"* OK")

    def _until(self, tagline):
        """Read until a line starting with tagline ends the input: only the
        octets new since the last look are searched."""
        need = b"\r\n" + tagline
        pos = 0
        while True:
            if self.buf.startswith(tagline):
                at = 0
            else:
                at = self.buf.find(need, max(0, pos - len(need)))
                at = at + 2 if at >= 0 else -1
            if at >= 0:
                end = self.buf.find(b"\r\n", at)
                if end >= 0:
                    out = bytes(self.buf[:end + 2])
                    del self.buf[:end + 2]
                    return out
                pos = at - 2
            else:
                pos = len(self.buf)
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("connection closed: " + bytes(self.buf[-200:]).decode("latin-1"))
            self.buf += chunk

    def cmd(self, text):
        self.n += 1
        tag = b"Q%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        out = self._until(tag + b" ")
        last = out[out.rfind(tag + b" "):]
        if not last.startswith(tag + b" OK"):
            raise RuntimeError(f"{text[:40]}: {last[:120]!r}")
        return out

    def close(self):
        try:
            self.s.sendall(b"Z LOGOUT\r\n")
        except OSError:
            pass
        self.s.close()


def pss_kib(pid):
    """Proportional set size of pid and its descendants, KiB (RSS where
    smaps_rollup is missing): shared pages counted once overall."""
    kids = b._children_map()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        for path, key in ((f"/proc/{p}/smaps_rollup", "Pss:"), (f"/proc/{p}/status", "VmRSS:")):
            try:
                with open(path) as f:
                    v = next((int(l.split()[1]) for l in f if l.startswith(key)), None)
                if v is not None:
                    total += v
                    break
            except OSError:
                continue
    return total


def tree_cpu(pid):
    """CPU seconds of pid and its live descendants, every thread, to the
    nanosecond (schedstat; /proc/PID/stat counts 10 ms ticks, too coarse
    for a case of a few ms), plus what reaped children left in cutime/cstime."""
    kids = b._children_map()
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
            f = b._stat_fields(p)
            total += (int(f[13]) + int(f[14])) / b.CLK_TCK
        except (OSError, ValueError, IndexError):
            continue
    return total


def timed(res, key, cpu, fn):
    c0, t0 = cpu(), time.monotonic()
    out = fn()
    res[key] = (time.monotonic() - t0) * 1000
    res[key + "_cpu"] = (cpu() - c0) * 1000
    return out


def idle_case(port, maildir, pid, sessions, res):
    sel = selectors.DefaultSelector()
    socks = []
    base = pss_kib(pid)
    batch = 50
    for first in range(0, sessions, batch):
        waiting = {}
        for _ in range(min(batch, sessions - first)):
            s = socket.create_connection(("127.0.0.1", port), timeout=b.TIMEOUT)
            s.sendall(f"a LOGIN {USER} {PASSWORD}\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
            waiting[s] = b""
            socks.append(s)
        deadline = time.monotonic() + b.TIMEOUT
        while waiting:
            for s in list(waiting):
                s.settimeout(max(0.1, deadline - time.monotonic()))
                waiting[s] += s.recv(65536)
                if b"\r\n+ " in waiting[s] or waiting[s].endswith(b"+ idling\r\n"):
                    del waiting[s]
                elif b"\r\na NO" in waiting[s] or b"\r\nb NO" in waiting[s] or b"BYE" in waiting[s]:
                    raise RuntimeError("IDLE session refused: " + waiting[s][-200:].decode("latin-1"))
            if time.monotonic() > deadline:
                raise RuntimeError("IDLE sessions did not start")
    time.sleep(1)    # let the server settle its allocations before measuring
    res["idle_kib"] = (pss_kib(pid) - base) / sessions
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    lat = []
    for k in range(DELIVERIES):
        name = f"{1800000000 + k}.M{k}P9.deliver"
        tmp = os.path.join(maildir, "tmp", name)
        with open(tmp, "w") as f:
            f.write(message(900000 + k, 4096))
        heard = set()
        t0 = time.monotonic()
        os.rename(tmp, os.path.join(maildir, "new", name))
        deadline = t0 + 40   # past Dovecot's 30 s mailbox_idle_check_interval
        while len(heard) < len(socks) and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                if b"EXISTS" in data and s not in heard:
                    heard.add(s)
                    lat.append((time.monotonic() - t0) * 1000)
        if len(heard) < len(socks):
            res["idle_error"] = f"{len(socks) - len(heard)} of {len(socks)} IDLE sessions missed a delivery"
            break
    lat.sort()
    if lat:
        res["idle_med_ms"] = statistics.median(lat)
        res["idle_p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    for s in socks:
        sel.unregister(s)
        s.close()


def run_server(port, maildir, pid, cfg):
    res = {}
    cpu = lambda: tree_cpu(pid)  # noqa: E731

    def login_select():
        c = Client(port)
        c.cmd(f"LOGIN {USER} {PASSWORD}")
        out = c.cmd("SELECT INBOX")
        c.close()
        m = re.search(rb"\* (\d+) EXISTS", out)
        if not m or int(m.group(1)) != cfg["n"]:
            raise RuntimeError(f"SELECT saw {m and m.group(1)} messages of {cfg['n']}")

    timed(res, "cold_ms", cpu, login_select)
    warm = []
    for _ in range(3):
        timed(res, "warm_ms", cpu, login_select)
        warm.append((res["warm_ms"], res["warm_ms_cpu"]))
    res["warm_ms"] = statistics.median(w[0] for w in warm)
    res["warm_ms_cpu"] = statistics.median(w[1] for w in warm)

    c = Client(port)
    c.cmd(f"LOGIN {USER} {PASSWORD}")
    c.cmd("SELECT INBOX")
    n = cfg["n"]
    out = timed(res, "fetch_ms", cpu,
                lambda: c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)"))
    if out.count(b"BODYSTRUCTURE") != n:
        raise RuntimeError(f"FETCH returned {out.count(b'BODYSTRUCTURE')} of {n}")
    res["fetch_s"] = n / res["fetch_ms"] * 1000
    out = timed(res, "peek4_ms", cpu, lambda: c.cmd(f"FETCH 1:{cfg['fetch']} BODY.PEEK[]"))
    res["peek4_mbs"] = len(out) / 2**20 / res["peek4_ms"] * 1000
    out = timed(res, "search_ms", cpu, lambda: c.cmd('SEARCH TEXT "needle"'))
    hits = len(out.split(b"\r\n")[0].split()) - 2
    if hits != (n + 9) // 10:
        raise RuntimeError(f"SEARCH TEXT found {hits}, expected {(n + 9) // 10}")
    timed(res, "store_ms", cpu, lambda: c.cmd("STORE 1:* +FLAGS (\\Seen)"))
    timed(res, "move_ms", cpu, lambda: c.cmd(f"MOVE 1:{cfg['move']} Archive"))
    c.cmd("SELECT Big")
    out = timed(res, "peek1m_ms", cpu, lambda: c.cmd(f"FETCH 1:{cfg['big']} BODY.PEEK[]"))
    res["peek1m_mbs"] = len(out) / 2**20 / res["peek1m_ms"] * 1000
    c.close()
    c0 = cpu()
    idle_case(port, maildir, pid, cfg["idle"], res)
    res["idle_cpu"] = (cpu() - c0) * 1000
    return res


CASES = [
    ("login+SELECT cold", [("ms", "cold_ms", ".1f"), ("server CPU ms", "cold_ms_cpu", ".1f")]),
    ("login+SELECT warm", [("ms", "warm_ms", ".1f"), ("server CPU ms", "warm_ms_cpu", ".1f")]),
    ("FETCH 1:* struct", [("ms", "fetch_ms", ".1f"), ("msgs/s", "fetch_s", ".0f"),
                          ("server CPU ms", "fetch_ms_cpu", ".1f")]),
    ("BODY.PEEK[] 4KiB", [("MB/s", "peek4_mbs", ".1f"), ("server CPU ms", "peek4_ms_cpu", ".1f")]),
    ("BODY.PEEK[] 1MiB", [("MB/s", "peek1m_mbs", ".1f"), ("server CPU ms", "peek1m_ms_cpu", ".1f")]),
    ("SEARCH TEXT", [("ms", "search_ms", ".1f"), ("server CPU ms", "search_ms_cpu", ".1f")]),
    ("STORE +FLAGS", [("ms", "store_ms", ".1f"), ("server CPU ms", "store_ms_cpu", ".1f")]),
    ("MOVE", [("ms", "move_ms", ".1f"), ("server CPU ms", "move_ms_cpu", ".1f")]),
    ("IDLE", [("EXISTS median ms", "idle_med_ms", ".2f"), ("EXISTS p99 ms", "idle_p99_ms", ".2f"),
              ("KiB per session", "idle_kib", ".1f")]),
]


def main():
    cfg = {"n": b.env_int("BENCH_IMAP_MESSAGES", 10000), "fetch": b.env_int("BENCH_IMAP_FETCH", 1000),
           "big": b.env_int("BENCH_IMAP_BIG", 100), "move": b.env_int("BENCH_IMAP_MOVE", 1000),
           "idle": b.env_int("BENCH_IMAP_IDLE", 1000)}
    cfg["fetch"] = min(cfg["fetch"], cfg["n"])
    cfg["move"] = min(cfg["move"], cfg["n"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * cfg["idle"] + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))   # the servers inherit it
    cleanup = b.Cleanup()
    rows, notes = [], []
    results = {}
    try:
        wd = b.make_workdir(cleanup, "imapsrc")
        src = os.path.join(wd, "Maildir")
        b.log(f"imap: building {cfg['n']} + {cfg['big']} x 1 MiB messages ...")
        make_maildir(src, cfg["n"], cfg["big"])
        only = os.environ.get("BENCH_IMAP_ONLY", "").strip()
        for who, start in (("dovecot", start_dovecot), ("tern", start_tern)):
            if only and who != only:
                continue
            mark = cleanup.mark()
            b.log(f"imap: {who} ...")
            try:
                w = b.make_workdir(cleanup, who)
                port, maildir, pid = start(cleanup, w, src, cfg["idle"])
                results[who] = run_server(port, maildir, pid, cfg)
            except b.TernUnavailable as exc:
                results[who] = {"error": f"tern IMAP: not available: {exc}"}
            except Exception as exc:
                b.log(traceback.format_exc())
                results[who] = {"error": f"{who}: failed: {exc!r}"}
            finally:
                cleanup.unwind(mark)
        size = f"{cfg['n']}msg"
        for case, metrics in CASES:
            if case == "IDLE":
                for r in results.values():
                    if "idle_error" in r:
                        r["error"] = r.pop("idle_error")
            b.report_case("imap", f"{case} {size}", f"imap: {case} ({cfg['n']} messages)", "Dovecot",
                          metrics, results.get("dovecot", {}), results.get("tern", {}), rows, notes,
                          width=18)
            for r in results.values():
                r.pop("error", None)                        # said once
    finally:
        cleanup.run()
    b.save_results("imap", rows, notes)


if __name__ == "__main__":
    main()

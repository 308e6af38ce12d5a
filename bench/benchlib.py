"""Shared helpers for tern's benchmarks (bench/*.py).

Starts private, loopback-only instances of tern, Postfix, Dovecot and
smtp-sink in temporary directories, measures them through /proc, and stops
every instance it started when the benchmark ends (normally, on error, or on
SIGINT/SIGTERM/SIGHUP). Python standard library only; run with
/usr/bin/python3. Nothing here touches the system's Postfix or Dovecot
configuration: every instance gets its own config directory.
"""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TERN_BIN = os.environ.get("TERN_BIN", os.path.join(ROOT, "build", "tern"))
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
BENCH_USER = "benchmail"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name, default):
    """An integer from the environment, or default when unset or empty."""
    val = os.environ.get(name, "")
    return int(val) if val.strip() else default


TIMEOUT = env_int("BENCH_TIMEOUT", 300)      # bound for every long wait, s
READY_TIMEOUT = env_int("BENCH_READY_TIMEOUT", 15)
STALL = env_int("BENCH_STALL_TIMEOUT", 30)  # give up after this long w/o progress


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- cleanup

class Cleanup:
    """A stack of stop actions run once, in reverse order, at exit.

    SIGINT, SIGTERM and SIGHUP become SystemExit so that every `finally`
    runs and every instance is stopped."""

    def __init__(self):
        self.actions = []
        self.at_end = []          # run only by run(): removals of work dirs
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame):
        raise SystemExit(128 + signum)

    def push(self, fn):
        self.actions.append(fn)
        return fn

    def mark(self):
        return len(self.actions)

    def unwind(self, mark):
        """Run the actions pushed since mark(), newest first."""
        while len(self.actions) > mark:
            _quiet(self.actions.pop())

    def run(self, fn=None):
        """Run one registered action now (and drop it), or all of them."""
        if fn is not None:
            if fn in self.actions:
                self.actions.remove(fn)
                _quiet(fn)
            return
        while self.actions:
            _quiet(self.actions.pop())
        while self.at_end:
            _quiet(self.at_end.pop())


def _quiet(fn):
    try:
        fn()
    except Exception as exc:  # a failed stop must not hide the others
        log(f"cleanup: {exc!r}")


# ---------------------------------------------------------------- basics

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHURN = bool(os.environ.get("BENCH_CHURN", "").strip() not in ("", "0"))
SETTLE = 0 if CHURN else env_int("BENCH_SETTLE", 65)


def make_workdir(cleanup, tag):
    """A fresh temp dir, world-traversable so dropped-privilege daemons
    (dovecot, postfix, benchmail) can reach the files inside it.  Unless
    BENCH_KEEP is set it is removed: at the very end (after every instance
    stopped), since removing thousands of files between runs charges the
    next run for them (see settle()); in churn mode (BENCH_CHURN=1) right
    after its own run instead, so that the next run, of the other system,
    starts among those deletions as on a busy server."""
    path = tempfile.mkdtemp(prefix=f"tern-bench-{tag}-")
    os.chmod(path, 0o755)
    if not os.environ.get("BENCH_KEEP"):
        remove = lambda: shutil.rmtree(path, ignore_errors=True)  # noqa: E731
        if CHURN:
            cleanup.push(remove)
        else:
            cleanup.at_end.append(remove)
    return path


def mode_label():
    """How the SMTP runs were spaced, for reports."""
    if CHURN:
        return "churn (no pause; each work dir removed right after its run)"
    return f"settled (sync + {SETTLE} s pause before each run)"


def settle():
    """sync, then wait BENCH_SETTLE seconds before a measured run (none in
    churn mode).

    ext4 without a journal will not reuse an inode freed in the last 60 s
    (360 s while its inode-table block is dirty): every file created
    probes each such inode first.  Without the pause, the files one
    system deleted (Postfix removes a queue file per message) slow down
    file creation in the run that follows, whichever system that is."""
    if CHURN:
        return
    os.sync()
    if SETTLE > 0:
        time.sleep(SETTLE)


def ensure_user(name=BENCH_USER):
    """(uid, gid) of a system user owning the reference maildirs; created
    with useradd when missing (Dovecot and Postfix refuse uid 0)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        name], check=True)
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), uid, gid)


def count_dir(path):
    """Entries in a directory (0 if it does not exist yet); cheap enough to
    poll every few milliseconds."""
    try:
        with os.scandir(path) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def wait_for(getter, n, t0, timeout=None, stall=None, interval=0.02):
    """Poll getter() until it reaches n. Gives up after `timeout` seconds
    from t0, or after `stall` seconds without progress. Returns (seconds
    since t0, or None when it gave up; last value)."""
    timeout = TIMEOUT if timeout is None else timeout
    stall = STALL if stall is None else stall
    last, last_change = -1, time.monotonic()
    while True:
        c = getter()
        now = time.monotonic()
        if c >= n:
            return now - t0, c
        if c != last:
            last, last_change = c, now
        if now >= t0 + timeout or now >= last_change + stall:
            return None, c
        time.sleep(interval)


def wait_banner(port, prefix, timeout, proc=None):
    """Wait until 127.0.0.1:port accepts a connection and greets with
    `prefix` (b"220", b"+OK"). False on timeout or when proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                if s.recv(512).startswith(prefix):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def tail(path, lines=8):
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join("    | " + l for l in data[-lines:])
    except OSError:
        return "    | (no log)"


# ---------------------------------------------------------------- /proc

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # comm may contain spaces: the fields after it start past the last ')'
    return data[data.rindex(")") + 2:].split()


def _children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(name)[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree_cpu(pid):
    """CPU seconds (user+system) used so far by pid and all its
    descendants: live ones are read directly, reaped ones are already in
    their parent's cutime/cstime. None if pid is gone."""
    kids = _children_map()
    total, todo, first = 0, [pid], True
    while todo:
        p = todo.pop()
        try:
            f = _stat_fields(p)
        except OSError:
            if first:
                return None
            continue
        first = False
        # fields 14-17 of stat(5): utime stime cutime cstime
        total += sum(int(x) for x in f[11:15])
        todo.extend(kids.get(p, []))
    return total / CLK_TCK


def loop_cpu(pid):
    """CPU seconds used so far by pid's main thread, tern's event loop
    (its worker threads, TLS handshakes and disk commits, not counted);
    None if gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vm_hwm_kib(pid):
    """Peak resident set size (VmHWM) of pid in KiB, None if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cpu {model}, {mem:.0f} GiB RAM, Linux {os.uname().release}"


# ---------------------------------------------------------------- load tools

def smtp_source(port, count, sessions, size, rcpt, timeout=None):
    """Run smtp-source; returns (wall seconds, error text or None)."""
    cmd = [SMTP_SOURCE, "-4", "-s", str(sessions), "-m", str(count),
           "-l", str(size), "-M", "source.test", "-f", "bench@source.test",
           "-t", rcpt]
    if os.environ.get("BENCH_REUSE_CONN"):
        cmd.insert(1, "-d")
    cmd.append(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout or TIMEOUT)
    except subprocess.TimeoutExpired:
        return time.monotonic() - t0, f"smtp-source timed out after {timeout or TIMEOUT}s"
    wall = time.monotonic() - t0
    if r.returncode != 0:
        msg = r.stdout.decode("utf-8", "replace").strip().splitlines()
        return wall, "smtp-source failed: " + (msg[-1] if msg else f"exit {r.returncode}")
    return wall, None


class Sink:
    """smtp-sink counting what arrives; it exits after `count` messages."""

    def __init__(self, cleanup, workdir, count):
        self.port = free_port()
        self.count = count
        self.out = os.path.join(workdir, f"sink-{self.port}.out")
        self.outf = open(self.out, "wb")
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-4", "-u", "nobody", "-c", "-M", str(count),
             f"127.0.0.1:{self.port}", "1000"],
            stdout=self.outf, stderr=subprocess.STDOUT)
        cleanup.push(self.stop)
        if not wait_banner(self.port, b"220", READY_TIMEOUT, self.proc):
            raise RuntimeError("smtp-sink did not start")

    def received(self):
        """Messages counted so far (from -c's running counters)."""
        if self.proc.poll() is not None and self.proc.returncode == 0:
            return self.count      # -M: it exits once all have arrived
        try:
            with open(self.out, "rb") as f:
                f.seek(max(0, os.path.getsize(self.out) - 256))
                data = f.read()
        except OSError:
            return 0
        # -c prints "sess=N quit=N mesg=N" records separated by \r
        found = re.findall(rb"mesg=(\d+)", data)
        return int(found[-1]) if found else 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.outf.close()


# ---------------------------------------------------------------- Postfix

class Postfix:
    """A private Postfix instance (postfix -c DIR) on 127.0.0.1:port.

    mode "virtual": bench@bench.test goes into a Maildir via the `virtual`
    agent (owned by benchmail); mode "relay": everything else goes to
    relayhost [127.0.0.1]:sink_port."""

    def __init__(self, cleanup, workdir, mode, sink_port=None):
        self.dir = os.path.join(workdir, "postfix")
        self.port = free_port()
        self.mode = mode
        self.cleanup = cleanup
        self.mail_base = os.path.join(self.dir, "mail")
        self.maildir_new = os.path.join(self.mail_base, "bench.test/bench/Maildir/new")
        self.log = os.path.join(self.dir, "log", "postfix.log")
        self.started = False
        self._configure(sink_port)

    def _postconf(self, *args):
        subprocess.run(["postconf", "-c", self.conf, *args], check=True,
                       stdout=subprocess.DEVNULL)

    def _configure(self, sink_port):
        self.conf = os.path.join(self.dir, "etc")
        os.makedirs(self.conf)
        os.makedirs(os.path.join(self.dir, "log"))
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "queue"))
        shutil.chown(os.path.join(self.dir, "log"), "postfix", "postfix")
        shutil.chown(os.path.join(self.dir, "data"), "postfix", "postfix")
        shutil.copy("/usr/share/postfix/master.cf.dist",
                    os.path.join(self.conf, "master.cf"))
        uid, gid = ensure_user()
        lines = [
            "compatibility_level = 3.6",
            f"queue_directory = {self.dir}/queue",
            f"data_directory = {self.dir}/data",
            f"maillog_file = {self.log}",
            f"maillog_file_prefixes = {self.dir}",
            "myhostname = ref.bench.test",
            "mydomain = bench.test",
            "myorigin = $myhostname",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mydestination =",
            "local_recipient_maps =",
            "mynetworks = 127.0.0.0/8",
            "relay_domains =",
            "alias_maps =",
            "alias_database =",
            "smtp_dns_support_level = disabled",
            "smtputf8_enable = no",
            "biff = no",
            "message_size_limit = 209715200",
            "mailbox_size_limit = 0",
            "virtual_mailbox_limit = 0",
        ]
        if self.mode == "virtual":
            os.makedirs(self.mail_base)
            os.chown(self.mail_base, uid, gid)
            maps = os.path.join(self.conf, "vmailbox")
            with open(maps, "w") as f:
                f.write("bench@bench.test bench.test/bench/Maildir/\n")
            lines += [
                "virtual_mailbox_domains = bench.test",
                f"virtual_mailbox_base = {self.mail_base}",
                f"virtual_mailbox_maps = texthash:{maps}",
                f"virtual_uid_maps = static:{uid}",
                f"virtual_gid_maps = static:{gid}",
                f"virtual_minimum_uid = {uid}",
            ]
        else:
            lines += [f"relayhost = [127.0.0.1]:{sink_port}"]
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self._postconf("-M#", "smtp/inet")
        self._postconf("-M", f"127.0.0.1:{self.port}/inet="
                       f"127.0.0.1:{self.port} inet n - n - - smtpd")
        self._postconf("-F", "*/*/chroot = n")

    def _postfix(self, verb):
        """postfix -c DIR verb; on failure, rerun it on a pseudo-terminal
        (the only place it prints its reason before its own log runs)."""
        cmd = ["postfix", "-c", self.conf, verb]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
        if r.returncode == 0:
            return
        why = subprocess.run(["script", "-qc", " ".join(cmd), "/dev/null"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=60).stdout.decode("utf-8", "replace")
        raise RuntimeError(f"postfix {verb} failed: {why.strip()}")

    def start(self):
        self._postfix("check")
        self.cleanup.push(self.stop)
        self.started = True
        self._postfix("start")
        if not wait_banner(self.port, b"220", READY_TIMEOUT):
            raise RuntimeError("Postfix did not answer 220:\n" + tail(self.log))

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        subprocess.run(["postfix", "-c", self.conf, "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)
        deadline = time.monotonic() + 10
        while pid and os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid and os.path.exists(f"/proc/{pid}"):
            subprocess.run(["postfix", "-c", self.conf, "abort"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30)


# ---------------------------------------------------------------- Dovecot

def dovecot_passwd(dir, user, password, uid, gid, home):
    """dir/passwd (passwd-file: one user, PLAIN password); its path."""
    path = os.path.join(dir, "passwd")
    with open(path, "w") as f:
        f.write(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
    os.chmod(path, 0o644)
    return path


def dovecot_conf(dir, passwd, protocols, services, uid=None, mechanisms="plain", mail_location=None,
                 extra=""):
    """The text of a private dovecot.conf: no system config, base_dir and
    state in dir/run and dir/state, every log line in dir/dovecot.log,
    loopback only, no TLS, plaintext AUTH, passdb and userdb from the
    passwd file.  uid: the one user mail processes may run as; services:
    the listener blocks; extra: more settings (limits, namespaces).  Used
    by the benches and by the Dovecot interop test."""
    log = os.path.join(dir, "dovecot.log")
    text = f"""\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {log}
info_log_path = {log}
protocols = {protocols}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
"""
    if uid is not None:
        text += f"first_valid_uid = {uid}\nlast_valid_uid = {uid}\n"
    if mail_location:
        text += f"mail_location = {mail_location}\n"
    text += extra
    text += f"""\
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
"""
    return text + services


def dovecot_imap_listener(port=0):
    """imap-login on 127.0.0.1:port in the clear, no imaps (port 0: no
    IMAP at all; Dovecot opens its default ports else)."""
    return f"""\
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class DovecotInstance:
    """A private Dovecot of the benches: dir/run, dir/state, its config
    in dir/dovecot.conf, started in the foreground, stopped with doveadm.
    Subclasses write the config and say when it is ready."""

    def __init__(self, cleanup, dir):
        self.dir = dir
        self.cleanup = cleanup
        self.log = os.path.join(dir, "dovecot.log")
        self.conf = os.path.join(dir, "dovecot.conf")
        self.proc = None
        for d in ("run", "state"):
            os.makedirs(os.path.join(dir, d))

    def write_conf(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def ready(self):
        raise NotImplementedError

    def launch(self, what):
        """Start it and wait until ready() (what: for the error)."""
        self.cleanup.push(self.stop)
        self.logf = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        if not self.ready():
            raise RuntimeError(f"Dovecot {what}:\n" + tail(self.log)
                               + "\n" + tail(os.path.join(self.dir, "stderr.log")))

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run(["doveadm", "-c", self.conf, "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


class Dovecot(DovecotInstance):
    """A private Dovecot POP3 instance on 127.0.0.1:port, passwd-file auth,
    mail in ROOT/%d/%n/Maildir owned by benchmail."""

    def __init__(self, cleanup, workdir, user, password):
        super().__init__(cleanup, os.path.join(workdir, "dovecot"))
        self.port = free_port()
        self.mail_root = os.path.join(self.dir, "mail")
        local, domain = user.split("@")
        self.maildir = os.path.join(self.mail_root, domain, local, "Maildir")
        uid, gid = ensure_user()
        os.makedirs(self.mail_root)
        passwd = dovecot_passwd(self.dir, user, password, uid, gid, os.path.join(self.mail_root, domain, local))
        self.write_conf(dovecot_conf(self.dir, passwd, "pop3", uid=uid,
                                     mail_location=f"maildir:{self.mail_root}/%d/%n/Maildir", services=f"""\
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""" + dovecot_imap_listener()))

    def ready(self):
        return wait_banner(self.port, b"+OK", READY_TIMEOUT, self.proc)

    def start(self):
        self.launch("did not answer +OK")


# ---------------------------------------------------------------- rspamd

RSPAMD_CONF = """
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    filters = "chartable,regexp";
    cache_file = "$DBDIR/symbols.cache";
    url_tld = "${{SHAREDIR}}/effective_tld_names.dat";
    tempdir = "{tmp}";
    dns {{ nameserver = ["127.0.0.1:{dns}"]; timeout = 0.2s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "$LOGDIR/rspamd.log"; level = "{level}"; }}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    milter = yes;
    count = {count};
    timeout = 60s;
    spam_header = "X-Spam";
{proxy_extra}    upstream "local" {{ default = yes; self_scan = yes; }}
}}
"""

# rspamd skips its header fields for local and authenticated clients by
# default; the clients of the benches and tests are local
RSPAMD_MILTER_HEADERS = """
use = ["x-spamd-result", "x-rspamd-queue-id", "x-rspamd-action"];
skip_local = false;
skip_authenticated = false;
"""


def rspamd_setup(base, port, dns_port, count=1, level="warning", proxy_extra="", local=None):
    """A private rspamd's files under base: its dirs, local.d (milter
    headers, and local: file name -> text), rspamd.conf with the proxy
    worker in milter mode scanning itself (no Redis, no controller) on
    127.0.0.1:port, its DNS at dns_port.  Returns the command line (run it
    in the foreground, in a session of its own)."""
    base = str(base)
    dirs = {k: os.path.join(base, k) for k in ("local", "db", "run", "log", "tmp")}
    for d in dirs.values():
        os.makedirs(d)
    os.makedirs(os.path.join(dirs["local"], "local.d"))
    for name, text in dict({"milter_headers.conf": RSPAMD_MILTER_HEADERS}, **(local or {})).items():
        with open(os.path.join(dirs["local"], "local.d", name), "w") as f:
            f.write(text)
    conf = os.path.join(base, "rspamd.conf")
    with open(conf, "w") as f:
        f.write(RSPAMD_CONF.format(port=port, dns=dns_port, tmp=dirs["tmp"], count=count, level=level,
                                   proxy_extra=proxy_extra))
    args = [shutil.which("rspamd") or "/usr/bin/rspamd", "-f", "-c", conf]
    if os.geteuid() == 0:
        args += ["-i", "-u", "root", "-g", "root"]
    for var, d in (("LOCAL_CONFDIR", "local"), ("DBDIR", "db"), ("RUNDIR", "run"), ("LOGDIR", "log")):
        args.append(f"--var={var}={dirs[d]}")
    return args


# ---------------------------------------------------------------- tern

class TernUnavailable(Exception):
    """tern is not built, does not start, or lacks the feature measured."""


class Tern:
    """tern in the foreground (`build/tern serve -c FILE`) with the bench
    config; listeners only for what is asked (pop3, smarthost)."""

    def __init__(self, cleanup, workdir, pop3=False, sink_port=None, extra=None):
        self.dir = os.path.join(workdir, "tern")
        self.state = os.path.join(self.dir, "tern-state")
        self.maildir = os.path.join(self.state, "mail/bench.test/bench/Maildir")
        self.maildir_new = os.path.join(self.maildir, "new")
        self.port = free_port()
        self.pop3_port = free_port() if pop3 else None
        self.cleanup = cleanup
        self.log = os.path.join(self.dir, "tern.log")
        self.proc = None
        os.makedirs(self.state)
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            f.write("bench@bench.test:{PLAIN}benchpw\n")
        os.chmod(users, 0o600)
        cfg = [
            "[server]", "hostname  = bench.test", f"state_dir = {self.state}",
            "[smtp]", f"listen = 127.0.0.1:{self.port}", "max_message_size = 200M",
        ]
        if pop3:
            cfg += ["[pop3]", f"listen = 127.0.0.1:{self.pop3_port}"]
        cfg += ["[domains]", "local = bench.test", "[users]", f"file = {users}",
                "[relay]", "trusted_networks = 127.0.0.0/8"]
        if sink_port:
            cfg += [f"smarthost = [127.0.0.1]:{sink_port}"]
        cfg += extra or []        # more config lines ("[smtp]", "key = value", ...)
        self.conf = os.path.join(self.dir, "tern.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(cfg) + "\n")

    def start(self):
        if not os.access(TERN_BIN, os.X_OK):
            raise TernUnavailable(f"{TERN_BIN} not built")
        self.cleanup.push(self.stop)
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen([TERN_BIN, "serve", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        if not wait_banner(self.port, b"220", READY_TIMEOUT, self.proc):
            why = ("exited with " + str(self.proc.returncode)
                   if self.proc.poll() is not None
                   else f"no 220 within {READY_TIMEOUT}s")
            self.stop()
            raise TernUnavailable(f"tern did not start ({why})\n" + tail(self.log))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        self.proc = None


# ---------------------------------------------------------------- output

def fmt(x, spec=".0f", none="-"):
    return none if x is None else format(x, spec)


def ratio(t, r):
    return None if t is None or r in (None, 0) else t / r


def save_results(name, rows, notes):
    """Rows for the summary table (dicts: bench, case, metric, reference,
    tern, ratio) and notes (one-line problems) for bench/summary.py,
    written to $BENCH_RESULTS_DIR/NAME.json."""
    out = os.environ.get("BENCH_RESULTS_DIR")
    if not out:
        return
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump({"rows": rows, "notes": notes}, f, indent=1)


def report_case(bench, case, heading, ref_name, metrics, ref, tern, rows, notes, width=14, scale=None):
    """Print one case as a table (reference, tern, their ratio), and add
    its rows and its errors (as notes) for save_results().  metrics are
    (label, key, format) triples; scale maps a key to a divisor for both
    sides (KiB to MiB, say)."""
    scale = scale or {}
    print(f"\n== {heading}")
    print(f"   {'':{width}} {ref_name:>10} {'tern':>10} {'tern/ref':>9}")
    for label, key, spec in metrics:
        r, t = ref.get(key), tern.get(key)
        if key in scale:
            r = None if r is None else r / scale[key]
            t = None if t is None else t / scale[key]
        q = ratio(t, r)
        print(f"   {label:{width}} {fmt(r, spec):>10} {fmt(t, spec):>10} {fmt(q, '.2f'):>9}")
        rows.append({"bench": bench, "case": case, "metric": label,
                     "reference": r, "tern": t, "ratio": q, "spec": spec})
    for who, res in ((ref_name, ref), ("tern", tern)):
        if res.get("error"):
            print("   " + labelled(who, res["error"]))
            notes.append(f"[{case}] " + note_line(who, res["error"]))
    sys.stdout.flush()


def labelled(who, error):
    """The error prefixed with who, unless it already names them."""
    error = error.strip()
    return error if error.startswith(who) else f"{who}: {error}"


def note_line(who, error):
    """The first line of an error, for the summary's notes."""
    return labelled(who, error).splitlines()[0]

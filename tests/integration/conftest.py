"""Shared fixtures: run the real tern binary on free loopback ports with a
private state directory.

    def test_x(make_tern):
        t = make_tern(services=("smtp", "pop3"), config={"smtp": {"max_recipients": "3"}})
        with t.smtp() as c: ...

Every test gets its own temporary directory; the server is stopped (and its
log shown on failure) when the test ends.
"""
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TERN_BIN = os.environ.get("TERN_BIN", os.path.join(ROOT, "build", "tern"))
SERVICES = ("smtp", "submission", "submissions", "pop3", "pop3s")
STARTED = " event=start version="   # logged once start-up is complete


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30.0, host="127.0.0.1"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def arrival_key(name):
    """Sort key for Maildir names in arrival order, numbers compared as
    numbers (like the server's strverscmp): "<sec>.M<usec>P<pid>Q<n>..." has
    an unpadded microsecond field, so a plain sort puts M112115 before
    M79935."""
    return [(0, int(x), "") if x.isdigit() else (1, 0, x) for x in re.findall(r"\d+|\D+", name)]


def wait_dns(port, timeout=30.0, host="127.0.0.1", proc=None):
    """Wait until a DNS server answers on (host, port) over UDP: any reply
    to a query for "." will do.  For a dnsmasq just started; given its
    process, gives up as soon as it has exited."""
    query = bytes.fromhex("abcd01000001000000000000") + b"\x00\x00\x02\x00\x01"   # . NS IN
    deadline = time.time() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.time() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            try:
                s.sendto(query, (host, port))
                if s.recv(4096)[:2] == query[:2]:
                    return True
            except OSError:
                time.sleep(0.05)
    return False


DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


class Dnsmasq:
    """A private dnsmasq on 127.0.0.1 serving the records in args, on a
    free port.  dnsmasq binds the port for both UDP and TCP, and a port that
    was free when probed can be taken meanwhile (by another test's client
    socket, say): a start that fails is retried on another port, and the
    last attempt's own words end up in the assertion."""

    ATTEMPTS = 5

    def __init__(self, args):
        said = ""
        for _ in range(self.ATTEMPTS):
            self.port = free_port()
            with tempfile.TemporaryFile() as err:
                self.proc = subprocess.Popen(
                    [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                     "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=", "--user=",
                     f"--port={self.port}"] + list(args),
                    stdout=subprocess.DEVNULL, stderr=err)
                if wait_dns(self.port, timeout=15, proc=self.proc):
                    return
                self.stop()
                err.seek(0)
                said = err.read().decode(errors="replace")
        raise AssertionError(f"dnsmasq did not answer after {self.ATTEMPTS} attempts: {said}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(5)


class RawConn(socket.socket):
    """A socket that can carry attributes (socket.socket has __slots__)."""


class Tern:
    def __init__(self, base, services=("smtp",), config=None, users=None, hostname="mx.test",
                 domains="example.test localhost"):
        self.base = str(base)
        self.state = os.path.join(self.base, "state")
        os.makedirs(self.state, exist_ok=True)
        self.conf_path = os.path.join(self.base, "tern.conf")
        self.log_path = os.path.join(self.base, "tern.log")
        self.users_path = os.path.join(self.state, "users")
        self.hostname = hostname
        self.ports = {s: free_port() for s in services}
        self.proc = None
        sections = {
            "server": {"hostname": hostname, "state_dir": self.state, "workers": "2"},
            "domains": {"local": domains},
        }
        for s, p in self.ports.items():
            sections.setdefault(s, {})["listen"] = f"127.0.0.1:{p}"
        for sec, kv in (config or {}).items():
            sections.setdefault(sec, {}).update(kv)
        self.sections = sections
        self.write_config()
        if users is None:
            users = {"alice@example.test": "alicepw", "bob@example.test": "bobpw"}
        with open(self.users_path, "w") as f:
            for addr, pw in users.items():
                f.write(f"{addr}:{{PLAIN}}{pw}\n")
        os.chmod(self.users_path, 0o600)

    def write_config(self):
        with open(self.conf_path, "w") as f:
            for sec, kv in self.sections.items():
                f.write(f"[{sec}]\n")
                for k, v in kv.items():
                    f.write(f"{k} = {v}\n")

    def start(self, wait=True):
        started = self.log().count(STARTED)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([TERN_BIN, "serve", "-c", self.conf_path],
                                     stdout=self.logf, stderr=self.logf, cwd=self.base)
        if wait:
            for s, p in self.ports.items():
                if not wait_port(p):
                    raise RuntimeError(f"tern did not listen on {s}:{p}\n{self.log()}")
            # The ports listen before start-up is over (the control socket,
            # for one, comes later): "event=start" ends it.
            deadline = time.time() + 30
            while self.log().count(STARTED) <= started:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"tern did not finish starting\n{self.log()}")
                time.sleep(0.02)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def port(self, service="smtp"):
        return self.ports[service]

    def smtp(self, service="smtp", **kw):
        return smtplib.SMTP("127.0.0.1", self.ports[service], local_hostname="client.test",
                            timeout=kw.pop("timeout", 10), **kw)

    def connect(self, service="smtp", timeout=10):
        """A raw socket with the greeting already read."""
        raw = socket.create_connection(("127.0.0.1", self.ports[service]), timeout=timeout)
        s = RawConn(raw.family, raw.type, raw.proto, fileno=raw.detach())
        s.settimeout(timeout)
        s.greeting = recv_reply(s)
        return s

    def maildir(self, addr):
        local, domain = addr.lower().split("@")
        return os.path.join(self.state, "mail", domain, local, "Maildir")

    def messages(self, addr, sub="new"):
        d = os.path.join(self.maildir(addr), sub)
        if not os.path.isdir(d):
            return []
        out = []
        for name in sorted(os.listdir(d), key=arrival_key):
            with open(os.path.join(d, name), "rb") as f:
                out.append(f.read())
        return out

    def wait_log(self, text, n=1, timeout=30.0):
        """Wait until text occurs at least n times in the log; returns the log.
        Use it instead of a sleep whenever the server logs what it did."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            log = self.log()
            if log.count(text) >= n:
                return log
            time.sleep(0.05)
        raise AssertionError(f"log: expected {n} x {text!r}\n" + self.log()[-3000:])

    def wait_for_log(self, pattern, timeout=30.0):
        """Wait until the regular expression pattern matches a log line;
        returns the match.  For negative assertions: wait for the event
        after which the thing cannot happen any more, then assert."""
        rx = re.compile(pattern, re.M)
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = rx.search(self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"log: expected /{pattern}/\n" + self.log()[-3000:])

    def wait_sessions_closed(self, timeout=30.0):
        """Wait until every session the log shows connecting has ended
        (as many event=disconnect as event=connect lines): whatever those
        sessions did, committed or refused, is done."""
        deadline = time.time() + timeout
        while True:
            open_ = self.open_sessions()
            if not open_:
                return self.log()
            if time.time() > deadline:
                raise AssertionError(f"sessions still open: {sorted(open_)}\n" + self.log()[-3000:])
            time.sleep(0.05)

    def open_sessions(self):
        """Ids of the sessions logged as connected and not yet ended."""
        log = self.log()
        return set(re.findall(r" event=connect session=(\w+)", log)) - \
            set(re.findall(r" event=disconnect session=(\w+)", log))

    def queue_ids(self):
        """Ids of the committed messages in the queue."""
        d = os.path.join(self.state, "queue", "msg")
        return sorted(n for n in os.listdir(d) if len(n) == 16) if os.path.isdir(d) else []

    def wait_queue_empty(self, timeout=30.0):
        """Wait until no message is queued: every delivery and notice of
        the messages accepted so far is done (a message leaves the queue
        only after both)."""
        wait_for(lambda: self.queue_ids() == [], timeout, "an empty queue", self)

    def queue_entries(self):
        """`tern queue list --json`: one entry per queued recipient."""
        r = self.cli("queue", "list", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def wait_queue_states(self, state, timeout=30.0):
        """Wait until the queue holds recipients and every one of them is in
        state as saved on disk (the scheduler saves a message's state after
        its attempt and its notices are done)."""
        def done():
            e = self.queue_entries()
            return e != [] and all(x["state"] == state for x in e)
        wait_for(done, timeout, f"every queued recipient {state}", self)

    def wait_message_done(self, qid, timeout=30.0):
        """Wait until message qid is finished: delivered straight into its
        Maildirs before its 250 (path=direct), or removed from the queue
        once every recipient and notice is done.  After this nothing more
        arrives from it."""
        return self.wait_for_log(rf"event=removed queue={qid}\b|event=queued .*queue={qid} .*path=direct",
                                 timeout)

    def wait_messages(self, addr, n, timeout=30.0, sub="new"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            msgs = self.messages(addr, sub)
            if len(msgs) >= n:
                return msgs
            time.sleep(0.05)
        raise AssertionError(f"{addr}: expected {n} messages, have {len(self.messages(addr, sub))}\n"
                             + self.log()[-3000:])

    def cli(self, *args, input=None):
        return subprocess.run([TERN_BIN, *args, "-c", self.conf_path], input=input,
                              capture_output=True, text=True, timeout=30)


def wait_for(cond, timeout=30.0, what="condition", t=None):
    """Poll cond() until it is true or the deadline passes (then fail,
    with t's log when given)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n" + (t.log()[-4000:] if t else ""))


def recv_reply(sock, timeout=10.0):
    """Read one complete SMTP reply (all lines) from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode("latin-1")
        data += chunk
        lines = data.split(b"\r\n")
        complete = [l for l in lines[:-1]]
        if complete and len(complete[-1]) >= 4 and complete[-1][3:4] == b" " and lines[-1] == b"":
            return data.decode("latin-1")


def recv_until(sock, n_replies, timeout=10.0):
    """Read until n final reply lines ("ddd ") have arrived; returns the text."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        finals = [l for l in data.split(b"\r\n") if len(l) >= 4 and l[3:4] == b" "]
        if len(finals) >= n_replies and data.endswith(b"\r\n"):
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")


def codes(text):
    """The reply codes of the final lines of each reply in text."""
    return [int(l[:3]) for l in text.split("\r\n") if len(l) >= 4 and l[3] == " " and l[:3].isdigit()]


@pytest.fixture
def make_tern(tmp_path, request):
    made = []

    def factory(start=True, **kw):
        t = Tern(tmp_path / f"t{len(made)}", **kw)
        made.append(t)
        if start:
            t.start()
        return t

    yield factory
    for t in made:
        rc = t.stop()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(t.log()[-5000:])
        # A sanitizer report or a crash must fail the test that caused it.
        log = t.log()
        assert "ERROR: AddressSanitizer" not in log, log[-5000:]
        assert "runtime error:" not in log, log[-5000:]
        assert rc in (0, None, -9), f"tern exited with {rc}\n{log[-3000:]}"


@pytest.fixture(scope="module")
def silent_dns():
    """A name server (a UDP port on loopback) that takes queries and
    never answers: every lookup times out."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def tern(make_tern):
    return make_tern()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def smtp_probe(t):
    """An SMTP session past EHLO, opened before a load starts, whose NOOP
    round trips show what the load does to other sessions."""
    probe = socket.create_connection(("127.0.0.1", t.port("smtp")), timeout=30)
    recv_reply(probe)
    probe.sendall(b"EHLO probe.test\r\n")
    recv_reply(probe)
    return probe


def noop_round_trips_while(probe, threads):
    """NOOP round trips (seconds) on probe while any of threads runs (at
    most 120 s); then the threads are joined and probe closed."""
    rtts = []
    deadline = time.time() + 120
    while any(th.is_alive() for th in threads) and time.time() < deadline:
        t0 = time.perf_counter()
        probe.sendall(b"NOOP\r\n")
        assert recv_reply(probe).startswith("250")
        rtts.append(time.perf_counter() - t0)
        time.sleep(0.002)
    for th in threads:
        th.join(10)
    probe.close()
    return rtts

#!/usr/bin/python3
"""Benchmark: sender authentication (SPF, DKIM, DMARC) in tern.

(a) inbound: messages arriving on the MX port from 127.0.0.1 (not a
    trusted network, so checked), delivered into a local Maildir, with
    [checks] all off and all on (SPF pass, one RSA-2048 DKIM signature by
    dkimpy, DMARC p=reject passing).  The records come from a private
    dnsmasq on loopback.  Reported: delivered/s and tern's CPU ms per
    message; the issue's bound is a cost of at most 20 % (on/off >= 0.80).
(b) signing: messages submitted with AUTH PLAIN on a submission port and
    delivered into a local Maildir, DKIM-signed on the way with RSA-2048
    or Ed25519 - by tern, and by Postfix with the OpenDKIM milter (a
    private opendkim with KeyTable/SigningTable on a unix socket;
    Postfix's SASL from a private Dovecot auth service), same key, same
    messages, same driver.  Reported: accepted/s (signing happens before
    the 250 in both), delivered/s, and CPU ms per message (tern; Postfix's
    process tree plus opendkim's).  Target: tern >= 3x Postfix+OpenDKIM.

The load is one Python driver for both (smtp-source cannot send a signed
message, or AUTH): c processes, one session each, commands pipelined
(MAIL, RCPT, DATA in one write), every reply checked.  No TLS on either
side (tern: [auth] allow_plaintext; Postfix: no smtpd TLS), so what is
measured is the submission path with signing, not TLS.

Env: BENCH_MSGAUTH_MESSAGES (default: BENCH_MESSAGES or 2000),
BENCH_MSGAUTH_SESSIONS (10), BENCH_MSGAUTH_ODKIM_SOCKET (unix; or inet,
see bench/README.md for why it is not the default), BENCH_MSGAUTH_SIZES (inbound sizes in KiB,
"4,100"), BENCH_MSGAUTH_SIGN_SIZE (KiB, 4), BENCH_MSGAUTH_PARTS
("inbound,sign"), BENCH_TIMEOUT, BENCH_STALL_TIMEOUT, BENCH_KEEP.
"""

import base64
import email.utils
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"
OPENDKIM = "/usr/sbin/opendkim"
RCPT = "bench@bench.test"
UNTRUSTED = "10.255.0.0/16"   # tern's trusted_networks: not loopback, so port 25 is checked


# ---------------------------------------------------------------- keys and messages

def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def make_key(algorithm):
    """(PEM private key, DNS record, dkimpy's form of the private key)."""
    if algorithm == "rsa":
        pem = openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        pub = openssl("pkey", "-pubout", "-outform", "DER", data=pem)
        return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode(), pem
    pem = openssl("genpkey", "-algorithm", "ed25519")
    der = openssl("pkey", "-outform", "DER", data=pem)
    pub = openssl("pkey", "-pubout", "-outform", "DER", data=pem)
    return pem, "v=DKIM1; k=ed25519; p=" + base64.b64encode(pub[-32:]).decode(), base64.b64encode(der[-32:])


def message(frm, size_kib, tag):
    head = (f"From: Bench <{frm}>\r\nTo: <{RCPT}>\r\nSubject: msgauth bench {tag}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{tag}.{os.getpid()}@bench>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, size_kib * 1024 // len(line))
    return (head + body).encode()


# ---------------------------------------------------------------- the driver

def _replies(sock, buf, n):
    """Read n complete replies; returns (codes, rest of buffer)."""
    codes = []
    while len(codes) < n:
        while b"\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                raise EOFError("connection closed")
            buf += d
        line, buf = buf.split(b"\r\n", 1)
        if len(line) >= 4 and line[3:4] == b" ":
            codes.append((int(line[:3]), line))
    return codes, buf


def _session(args):
    """One SMTP session sending count messages; (sent, error or None)."""
    port, count, data, mail_from, auth, helo = args
    sent = 0
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=b.STALL)
        buf = b""
        (c,), buf = _replies(s, buf, 1)
        if c[0] != 220:
            return sent, c[1].decode("latin-1")
        s.sendall(f"EHLO {helo}\r\n".encode())
        (c,), buf = _replies(s, buf, 1)
        if auth:
            s.sendall(b"AUTH PLAIN " + base64.b64encode(auth.encode()) + b"\r\n")
            (c,), buf = _replies(s, buf, 1)
            if c[0] != 235:
                return sent, "AUTH: " + c[1].decode("latin-1")
        cmds = f"MAIL FROM:<{mail_from}>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode()
        for _ in range(count):
            s.sendall(cmds)
            cs, buf = _replies(s, buf, 3)
            if [x[0] for x in cs] != [250, 250, 354]:
                return sent, b" / ".join(x[1] for x in cs).decode("latin-1")
            s.sendall(data)
            (c,), buf = _replies(s, buf, 1)
            if c[0] != 250:
                return sent, c[1].decode("latin-1")
            sent += 1
        s.sendall(b"QUIT\r\n")
        s.close()
        return sent, None
    except (OSError, EOFError) as exc:
        return sent, f"driver: {exc}"


def _default_signals():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def stuffed(msg):
    """Dot-stuffed, CRLF, with the final dot line."""
    lines = msg.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines).rstrip(b"\r\n") + b"\r\n.\r\n"


def drive(pool, port, n, sessions, msg, mail_from, auth=None, helo="source.test"):
    """Send n messages over `sessions` parallel sessions; (wall s, error)."""
    data = stuffed(msg)
    per = [n // sessions + (1 if i < n % sessions else 0) for i in range(sessions)]
    t0 = time.monotonic()
    res = pool.map(_session, [(port, k, data, mail_from, auth, helo) for k in per if k])
    wall = time.monotonic() - t0
    errs = [e for _, e in res if e]
    return wall, (errs[0] if errs else None), sum(s for s, _ in res)


# ---------------------------------------------------------------- peers

class Dnsmasq:
    def __init__(self, cleanup, records):
        self.port = b.free_port()
        args = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=", "--user=",
                f"--port={self.port}", "--local=/test/", "--cache-size=1000"]
        for name, text in records.items():
            parts = [text[i:i + 250] for i in range(0, len(text), 250)]
            args.append("--txt-record=" + name + "," + ",".join(parts))
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cleanup.push(self.stop)
        deadline = time.monotonic() + b.READY_TIMEOUT
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("dnsmasq did not start")
            time.sleep(0.05)

    def _answers(self):
        q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04test\x00\x00\x01\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, ("127.0.0.1", self.port))
                return s.recv(512)[:2] == b"\x12\x34"
            except OSError:
                return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class DovecotAuth(b.DovecotInstance):
    """A private Dovecot running only its auth service, on a loopback inet
    listener, for Postfix's SASL (smtpd_sasl_type = dovecot)."""

    def __init__(self, cleanup, workdir, user, password):
        super().__init__(cleanup, os.path.join(workdir, "dovecot-auth"))
        self.port = b.free_port()
        uid, gid = b.ensure_user()
        passwd = b.dovecot_passwd(self.dir, user, password, uid, gid, self.dir)
        self.write_conf(b.dovecot_conf(self.dir, passwd, "none", mechanisms="plain login", services=f"""\
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
"""))

    def ready(self):
        """The auth service's handshake starts with VERSION."""
        deadline = time.monotonic() + b.READY_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(100).startswith(b"VERSION"):
                        return True
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return False
            time.sleep(0.05)

    def start(self):
        self.launch("auth did not start")


class OpenDKIM:
    """A private opendkim signing bench.test mail with one key, KeyTable
    and SigningTable in its own dir, on a unix socket (Debian's default)
    or a loopback inet one (socket="inet")."""

    def __init__(self, cleanup, workdir, pem, algorithm, socket_kind="unix"):
        self.dir = os.path.join(workdir, "opendkim")
        os.makedirs(self.dir)
        self.port = b.free_port()
        self.path = os.path.join(self.dir, "milter.sock")
        self.kind = socket_kind
        # what Postfix's smtpd_milters names
        self.milter = f"inet:127.0.0.1:{self.port}" if socket_kind == "inet" else f"unix:{self.path}"
        sock = f"inet:{self.port}@127.0.0.1" if socket_kind == "inet" else f"local:{self.path}"
        self.cleanup = cleanup
        uid, gid = b.ensure_user()
        key = os.path.join(self.dir, "sel.private")
        with open(key, "wb") as f:
            f.write(pem)
        os.chmod(key, 0o600)
        os.chown(key, uid, gid)
        with open(os.path.join(self.dir, "KeyTable"), "w") as f:
            f.write(f"sel._domainkey.bench.test bench.test:sel:{key}\n")
        with open(os.path.join(self.dir, "SigningTable"), "w") as f:
            f.write("*@bench.test sel._domainkey.bench.test\n")
        self.conf = os.path.join(self.dir, "opendkim.conf")
        with open(self.conf, "w") as f:
            f.write(f"""\
Syslog no
Mode s
Socket {sock}
UMask 000
PidFile {self.dir}/opendkim.pid
UserID {b.BENCH_USER}
KeyTable file:{self.dir}/KeyTable
SigningTable refile:{self.dir}/SigningTable
InternalHosts 127.0.0.1
Canonicalization relaxed/relaxed
SignatureAlgorithm {"ed25519-sha256" if algorithm == "ed25519" else "rsa-sha256"}
OversignHeaders From
RequireSafeKeys false
""")
        shutil.chown(self.dir, uid, gid)
        self.proc = None

    def start(self):
        self.cleanup.push(self.stop)
        self.errf = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen([OPENDKIM, "-f", "-x", self.conf], stdout=self.errf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + b.READY_TIMEOUT
        while True:
            try:
                if self.kind == "inet":
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                else:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(self.path)
                return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("opendkim did not start:\n" + b.tail(os.path.join(self.dir, "stderr.log")))
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.errf.close()


# ---------------------------------------------------------------- measuring

def measure(pool, n, sessions, msg, port, pids, maildir_new, mail_from, auth=None):
    """Drive n messages into port; accepted/s, delivered/s, CPU ms/msg of
    the process trees pids, and one delivered message for a sanity check."""
    res = {"accepted_s": None, "delivered_s": None, "cpu_ms": None, "error": None, "sample": None}
    before = b.count_dir(maildir_new)
    b.settle()
    cpu0 = [b.tree_cpu(p) for p in pids]
    t0 = time.monotonic()
    wall, err, sent = drive(pool, port, n, sessions, msg, mail_from, auth)
    if err:
        res["error"] = f"{sent} of {n} sent: {err}"
    else:
        res["accepted_s"] = n / wall
    done, count = b.wait_for(lambda: b.count_dir(maildir_new) - before, sent or n, t0)
    cpu1 = [b.tree_cpu(p) for p in pids]
    if done is not None and not err:
        res["delivered_s"] = n / done
    elif not res["error"]:
        res["error"] = f"only {count} of {n} delivered"
    if count and None not in cpu0 and None not in cpu1:
        res["cpu_ms"] = sum(c1 - c0 for c0, c1 in zip(cpu0, cpu1)) * 1000 / count
    try:
        name = sorted(os.listdir(maildir_new))[-1]
        with open(os.path.join(maildir_new, name), "rb") as f:
            res["sample"] = f.read(16384)
    except (OSError, IndexError):
        pass
    return res


def tern_extra(*sections):
    out = []
    for sec, kv in sections:
        out.append(f"[{sec}]")
        out += [f"{k} = {v}" for k, v in kv.items()]
    return out


def run_inbound(cleanup, pool, n, sessions, size_kib, key, checks_on):
    mark = cleanup.mark()
    try:
        wd = b.make_workdir(cleanup, "msgauth-in")
        pem, record, dkimpy_key = key
        dns = Dnsmasq(cleanup, {"sel._domainkey.source.test": record,
                                "source.test": "v=spf1 ip4:127.0.0.1 -all",
                                "_dmarc.source.test": "v=DMARC1; p=reject"})
        onoff = "on" if checks_on else "off"
        t = b.Tern(cleanup, wd, extra=tern_extra(
            ("dns", {"servers": f"127.0.0.1:{dns.port}"}),
            ("checks", {"spf": onoff, "dkim": onoff, "dmarc": "enforce" if checks_on else "off"})))
        # the checks apply to clients outside trusted_networks: not loopback
        with open(t.conf) as f:
            conf = f.read().replace("trusted_networks = 127.0.0.0/8", f"trusted_networks = {UNTRUSTED}")
        with open(t.conf, "w") as f:
            f.write(conf)
        t.start()
        import dkim
        msg = message("bench@source.test", size_kib, f"in{size_kib}")
        msg = dkim.sign(msg, b"sel", b"source.test", dkimpy_key) + msg
        res = measure(pool, n, sessions, msg, t.port, [t.proc.pid], t.maildir_new, "bench@source.test")
        if checks_on and res["sample"] is not None:
            s = res["sample"]
            if b"spf=pass" not in s or b"dkim=pass" not in s or b"dmarc=pass" not in s:
                res["error"] = (res["error"] or "") + " checks did not all pass: " \
                    + s.split(b"\n\n")[0].decode("latin-1")[:400]
        if not t.alive():
            res["error"] = (res["error"] or "") + " tern exited during the run\n" + b.tail(t.log)
        return res
    except b.TernUnavailable as exc:
        return {"error": f"tern: not available: {exc}"}
    except Exception as exc:
        return {"error": f"tern: {exc}"}
    finally:
        cleanup.unwind(mark)


def run_sign_tern(cleanup, pool, n, sessions, size_kib, key, algorithm):
    mark = cleanup.mark()
    try:
        wd = b.make_workdir(cleanup, "msgauth-tern")
        pem, _, _ = key
        path = os.path.join(wd, "sel.pem")
        with open(path, "wb") as f:
            f.write(pem)
        os.chmod(path, 0o600)
        sub = b.free_port()
        t = b.Tern(cleanup, wd, extra=tern_extra(
            ("submission", {"listen": f"127.0.0.1:{sub}"}),
            ("auth", {"allow_plaintext": "yes"}),
            ("dkim", {"keys": f"bench.test:sel:{path}"})))
        t.start()
        if not b.wait_banner(sub, b"220", b.READY_TIMEOUT, t.proc):
            raise b.TernUnavailable("no submission port")
        res = measure(pool, n, sessions, message("bench@bench.test", size_kib, f"s{algorithm}"), sub,
                      [t.proc.pid], t.maildir_new, "bench@bench.test", auth="\0bench@bench.test\0benchpw")
        check_signed(res, algorithm)
        if not t.alive():
            res["error"] = (res["error"] or "") + " tern exited during the run\n" + b.tail(t.log)
        return res
    except b.TernUnavailable as exc:
        return {"error": f"tern: not available: {exc}"}
    except Exception as exc:
        return {"error": f"tern: {exc}"}
    finally:
        cleanup.unwind(mark)


def run_sign_postfix(cleanup, pool, n, sessions, size_kib, key, algorithm):
    mark = cleanup.mark()
    try:
        if not os.access(OPENDKIM, os.X_OK):
            raise RuntimeError(f"{OPENDKIM} missing; run 'sh scripts/setup.sh'")
        wd = b.make_workdir(cleanup, "msgauth-pf")
        pem, _, _ = key
        odk = OpenDKIM(cleanup, wd, pem, algorithm, os.environ.get("BENCH_MSGAUTH_ODKIM_SOCKET", "unix"))
        odk.start()
        auth = DovecotAuth(cleanup, wd, "bench@bench.test", "benchpw")
        auth.start()
        pf = b.Postfix(cleanup, wd, "virtual")
        pf._postconf("-e", f"smtpd_milters = {odk.milter}", "milter_default_action = tempfail",
                     "milter_protocol = 6", "smtpd_sasl_auth_enable = yes", "smtpd_sasl_type = dovecot",
                     f"smtpd_sasl_path = inet:127.0.0.1:{auth.port}", "smtpd_tls_security_level = none",
                     "smtpd_sasl_security_options = noanonymous")
        pf.start()
        res = measure(pool, n, sessions, message("bench@bench.test", size_kib, f"s{algorithm}"), pf.port,
                      [pf.master_pid(), odk.proc.pid], pf.maildir_new, "bench@bench.test",
                      auth="\0bench@bench.test\0benchpw")
        check_signed(res, algorithm)
        return res
    except Exception as exc:
        return {"error": f"Postfix+OpenDKIM: {exc}"}
    finally:
        cleanup.unwind(mark)


def check_signed(res, algorithm):
    """A delivered message must carry the signature measured."""
    want = b"a=ed25519-sha256" if algorithm == "ed25519" else b"a=rsa-sha256"
    s = res.get("sample")
    if s is not None and (b"DKIM-Signature:" not in s or want not in s):
        res["error"] = (res["error"] or "") + f" delivered mail lacks a {want.decode()} DKIM-Signature"


IN_METRICS = [("delivered/s", "delivered_s", ".0f"), ("CPU ms/msg", "cpu_ms", ".3f")]
SIGN_METRICS = [("accepted/s", "accepted_s", ".0f"), ("delivered/s", "delivered_s", ".0f"),
                ("CPU ms/msg", "cpu_ms", ".3f")]


def main():
    n = b.env_int("BENCH_MSGAUTH_MESSAGES", b.env_int("BENCH_MESSAGES", 2000))
    sessions = b.env_int("BENCH_MSGAUTH_SESSIONS", 10)
    sizes = [int(x) for x in os.environ.get("BENCH_MSGAUTH_SIZES", "4,100").split(",") if x.strip()]
    sign_size = b.env_int("BENCH_MSGAUTH_SIGN_SIZE", 4)
    parts = os.environ.get("BENCH_MSGAUTH_PARTS", "inbound,sign").split(",")
    cleanup = b.Cleanup()
    rows, notes = [], []
    results = []
    # the driver's processes: default signal actions (not Cleanup's,
    # which they would inherit and which would keep terminate() waiting)
    pool = multiprocessing.Pool(sessions, initializer=_default_signals)
    cleanup.push(pool.terminate)
    try:
        keys = {"rsa": make_key("rsa"), "ed25519": make_key("ed25519")}
        if "inbound" in parts:
            for size in sizes:
                case = f"in {size}KiB c={sessions}"
                b.log(f"msgauth: {case}: checks off ...")
                off = run_inbound(cleanup, pool, n, sessions, size, keys["rsa"], False)
                b.log(f"msgauth: {case}: checks on ...")
                on = run_inbound(cleanup, pool, n, sessions, size, keys["rsa"], True)
                results.append(("msgauth_in", case, f"msgauth inbound: {n} x {case} (checks on / off; bound >= 0.80)",
                                "checks off", IN_METRICS, off, on))
        if "sign" in parts:
            for alg in ("rsa", "ed25519"):
                case = f"sign {alg} {sign_size}KiB"
                b.log(f"msgauth: {case}: Postfix+OpenDKIM ...")
                ref = run_sign_postfix(cleanup, pool, n, sessions, sign_size, keys[alg], alg)
                b.log(f"msgauth: {case}: tern ...")
                tern = run_sign_tern(cleanup, pool, n, sessions, sign_size, keys[alg], alg)
                results.append(("msgauth_sign", case, f"msgauth DKIM signing on submission: {n} x {case} c={sessions}"
                                " (target tern >= 3x)", "Pfx+ODKIM", SIGN_METRICS, ref, tern))
        pool.close()
        pool.join()
    finally:
        cleanup.run()
    for bench, case, heading, ref_name, metrics, ref, tern in results:
        b.report_case(bench, case, heading, ref_name, metrics, ref, tern, rows, notes)
    b.save_results("msgauth", rows, notes)


if __name__ == "__main__":
    main()

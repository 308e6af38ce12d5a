"""TLS certificates that change while tern runs, and the ACME client
(RFC 8555, RFC 8737) against pebble, the Let's Encrypt test CA, on
loopback.

Every TLS service (SMTP STARTTLS on 25 and 587, 465, POP3 STLS and 995,
IMAP STARTTLS and 993, HTTPS) takes its certificate from one store when a
handshake begins; the tests check the certificate each service presents
with Python's ssl module (issuer and subjectAltName of a verified chain),
before and after a change, without a restart."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import Dnsmasq, free_port, wait_port

TLS_SERVICES = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "https")
PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


# ---- certificates made with the openssl command ---------------------------

def run_openssl(*args, cwd):
    subprocess.run([OPENSSL] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(d, cn):
    os.makedirs(d, exist_ok=True)
    run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                cwd=d)
    return os.path.join(d, "ca.pem")


def make_leaf(d, names, days=30, ips=(), name="leaf"):
    """A certificate for names issued by d's CA: returns (cert, key)."""
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    run_openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={names[0]}", cwd=d)
    run_openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", str(days), "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


# ---- what a service presents ----------------------------------------------

def recv_line(s, prefix_ok=lambda l: True):
    data = b""
    while not data.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            raise AssertionError(f"connection closed after {data!r}")
        data += b
    return data


def recv_smtp(s):
    while True:
        line = recv_line(s)
        if len(line) < 4 or line[3:4] != b"-":
            return line


def starttls(service, s):
    """The plaintext part of each protocol up to its TLS upgrade."""
    if service in ("smtp", "submission"):
        recv_smtp(s)
        s.sendall(b"EHLO client.test\r\n")
        recv_smtp(s)
        s.sendall(b"STARTTLS\r\n")
        assert recv_smtp(s).startswith(b"220")
    elif service == "pop3":
        recv_line(s)
        s.sendall(b"STLS\r\n")
        assert recv_line(s).startswith(b"+OK")
    elif service == "imap":
        recv_line(s)
        s.sendall(b"a STARTTLS\r\n")
        while True:
            line = recv_line(s)
            if line.startswith(b"a "):
                assert line.startswith(b"a OK"), line
                break


def peer_cert(t, service, cafile, sni, sock=None):
    """The verified certificate (ssl's dict) that service presents to a
    client asking for sni and trusting only cafile."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    s = sock or socket.create_connection(("127.0.0.1", t.port(service)), timeout=10)
    try:
        if sock is None:
            starttls(service, s)
        with ctx.wrap_socket(s, server_hostname=sni) as tls:
            return tls.getpeercert()
    finally:
        s.close()


def issuer_cn(cert):
    return dict(x[0] for x in cert["issuer"])["commonName"]


def san_dns(cert):
    return sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")


def assert_all_services(t, cafile, sni, issuer, names):
    for svc in TLS_SERVICES:
        cert = peer_cert(t, svc, cafile, sni)
        assert issuer_cn(cert) == issuer, (svc, cert)
        assert san_dns(cert) == sorted(names), (svc, cert)


# ---- step 1: the certificate store ----------------------------------------

def test_tls_cert_replaced_without_restart_on_every_service(make_tern, tmp_path):
    """[tls] cert and key are replaced on disk and SIGHUP sent: every TLS
    service presents the new certificate from the next handshake on, the
    process is the same, and a session opened before the change that
    upgrades after it gets the new one too (the certificate is chosen
    when the handshake starts, not when the session was accepted)."""
    ca1 = make_ca(str(tmp_path / "ca1"), "First Test CA")
    cert1, key1 = make_leaf(str(tmp_path / "ca1"), ["mx.test"])
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    shutil.copy(cert1, tls_dir / "cert.pem")
    shutil.copy(key1, tls_dir / "key.pem")
    t = make_tern(services=TLS_SERVICES + ("http",),
                  config={"tls": {"cert": str(tls_dir / "cert.pem"), "key": str(tls_dir / "key.pem")}})
    pid = t.proc.pid
    assert_all_services(t, ca1, "mx.test", "First Test CA", ["mx.test"])

    early = socket.create_connection(("127.0.0.1", t.port("submission")), timeout=10)
    starttls("submission", early)

    ca2 = make_ca(str(tmp_path / "ca2"), "Second Test CA")
    cert2, key2 = make_leaf(str(tmp_path / "ca2"), ["mx.test", "mail.example.test"])
    shutil.copy(key2, tls_dir / "key.pem.new")
    shutil.copy(cert2, tls_dir / "cert.pem.new")
    os.rename(tls_dir / "key.pem.new", tls_dir / "key.pem")
    os.rename(tls_dir / "cert.pem.new", tls_dir / "cert.pem")
    t.proc.send_signal(signal.SIGHUP)
    t.wait_log("event=tls_reloaded")

    assert_all_services(t, ca2, "mx.test", "Second Test CA", ["mail.example.test", "mx.test"])
    cert = peer_cert(t, "submission", ca2, "mail.example.test", sock=early)
    assert issuer_cn(cert) == "Second Test CA"
    assert t.proc.pid == pid and t.proc.poll() is None


# ---- pebble ----------------------------------------------------------------

NAMES = ["autoconfig.example.test", "mta-sts.example.test", "mx.test"]


class Pebble:
    """pebble on loopback: its HTTPS API under a certificate of a CA made
    here (the package ships none), validating against tern's [http] and
    [https] ports, names resolved by a private dnsmasq."""

    def __init__(self, base, http_port, tls_port, dns_port, port=None, nonce_reject=0):
        self.nonce_reject = nonce_reject
        self.base = str(base)
        os.makedirs(self.base, exist_ok=True)
        self.ca = make_ca(os.path.join(self.base, "api-ca"), "Pebble API Test CA")
        self.cert, self.key = make_leaf(os.path.join(self.base, "api-ca"), ["localhost", "ca.test"],
                                        ips=["127.0.0.1"])
        self.port = port or free_port()
        self.mgmt = free_port()
        self.conf = os.path.join(self.base, "pebble.json")
        with open(self.conf, "w") as f:
            json.dump({"pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.mgmt}",
                "certificate": self.cert, "privateKey": self.key,
                "httpPort": http_port, "tlsPort": tls_port,
                "ocspResponderURL": "", "externalAccountBindingRequired": False}}, f)
        self.dns_port = dns_port
        self.proc = None
        self.log_path = os.path.join(self.base, "pebble.log")

    @property
    def directory(self):
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def directory_by_name(self):
        """The same, by a name that tern resolves through its [dns] servers."""
        return f"https://ca.test:{self.port}/dir"

    def start(self):
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT=str(self.nonce_reject), PEBBLE_AUTHZREUSE="0")
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PEBBLE, "-config", self.conf, "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                                     stdout=self.logf, stderr=self.logf, env=env, cwd=self.base)
        assert wait_port(self.port) and wait_port(self.mgmt), self.log()
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc:
            self.logf.close()
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def root(self):
        """pebble's issuing root (it makes a new one each run), as a file."""
        ctx = ssl.create_default_context(cafile=self.ca)
        import http.client
        c = http.client.HTTPSConnection("127.0.0.1", self.mgmt, context=ctx, timeout=10)
        c.request("GET", "/roots/0")
        r = c.getresponse()
        pem = r.read()
        assert r.status == 200, pem
        path = os.path.join(self.base, "root.pem")
        with open(path, "wb") as f:
            f.write(pem)
        return path


@pytest.fixture
def acme_env(make_tern, tmp_path):
    """A function that starts dnsmasq, pebble (unless told not to) and a
    tern with [acme] pointing at it; returns (tern, pebble)."""
    made = []

    def factory(challenge="tls-alpn-01", start_pebble=True, before_start=None, config=None,
                services=TLS_SERVICES + ("http",), nonce_reject=0, by_name=False, validate_port=None):
        dns = Dnsmasq(["--address=/mx.test/127.0.0.1", "--address=/example.test/127.0.0.1",
                       "--address=/ca.test/127.0.0.1"])
        made.append(dns)
        t = make_tern(start=False, services=services, domains="example.test")
        pebble = Pebble(tmp_path / "pebble", validate_port or t.port("http"), validate_port or t.port("https"),
                        dns.port, nonce_reject=nonce_reject)
        made.append(pebble)
        acme = {"directory": pebble.directory, "email": "postmaster@example.test", "challenge": challenge,
                "ca_file": pebble.ca, "retry": "1s"}
        if by_name:
            acme["directory"] = pebble.directory_by_name
            t.sections["dns"] = {"servers": f"127.0.0.1:{dns.port}"}
        acme.update(config or {})
        t.sections["acme"] = acme
        t.write_config()
        if before_start:
            before_start(t)
        if start_pebble:
            pebble.start()
        t.start()
        return t, pebble

    yield factory
    for m in reversed(made):
        m.stop()


def acme_file(t):
    return os.path.join(t.state, "acme", "cert.pem")


def assert_pebble_cert_everywhere(t, pebble):
    root = pebble.root()
    for svc in TLS_SERVICES:
        cert = peer_cert(t, svc, root, "mx.test")
        assert issuer_cn(cert).startswith("Pebble Intermediate CA"), (svc, cert)
        assert san_dns(cert) == NAMES, (svc, cert)
    # SNI for another name of the certificate, on HTTPS.
    cert = peer_cert(t, "https", root, "mta-sts.example.test")
    assert san_dns(cert) == NAMES


def test_acme_tls_alpn_01_issues_and_every_service_switches(acme_env):
    """The directory by name: c-ares through [dns] servers, then the CA's
    certificate checked for that name against ca_file."""
    t, pebble = acme_env("tls-alpn-01", by_name=True)
    pid = t.proc.pid
    t.wait_log("event=acme_issued", timeout=60)
    log = t.log()
    assert log.count("event=acme_challenge") == 3 and "type=tls-alpn-01" in log
    assert log.count("event=acme_authorized") == 3
    assert "event=web_acme_validation" in log
    assert_pebble_cert_everywhere(t, pebble)
    assert t.proc.pid == pid
    for name in ("account.key", "cert.pem"):
        st = os.stat(os.path.join(t.state, "acme", name))
        assert st.st_mode & 0o777 == 0o600, name
    # Renewal is set for 30 days before the end, not now.
    assert "event=acme_renewal_scheduled" in t.wait_log("event=acme_renewal_scheduled")


def saved_cert(tmp_path, days, cn="Old Test CA", names=NAMES):
    """A function for acme_env's before_start: state_dir/acme/cert.pem as
    tern writes it (the key, then the chain), from a CA of our own."""
    ca = make_ca(str(tmp_path / "old-ca"), cn)
    cert, key = make_leaf(str(tmp_path / "old-ca"), names, days=days)

    def put(t):
        d = os.path.join(t.state, "acme")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "cert.pem"), "w") as f:
            f.write(open(key).read() + open(cert).read())
        os.chmod(os.path.join(d, "cert.pem"), 0o600)
    return ca, put


def test_acme_http_01_issues_and_a_restart_uses_the_saved_certificate(acme_env):
    t, pebble = acme_env("http-01")
    t.wait_log("event=acme_issued", timeout=60)
    log = t.log()
    assert log.count("event=acme_challenge") == 3 and "type=http-01" in log
    assert log.count('path="/.well-known/acme-challenge/') >= 3
    assert_pebble_cert_everywhere(t, pebble)
    root = pebble.root()
    # With the CA gone, a restart serves the saved certificate and orders nothing.
    pebble.stop()
    t.restart()
    m = t.wait_for_log(r"event=acme_loaded file=\S+ not_after=\d+ covers_names=yes")
    t.wait_log("event=acme_renewal_scheduled", 2)
    assert t.log().count("event=acme_order") == 1 and "event=acme_failed" not in t.log()
    for svc in TLS_SERVICES:
        cert = peer_cert(t, svc, root, "mx.test")
        assert issuer_cn(cert).startswith("Pebble Intermediate CA") and san_dns(cert) == NAMES, svc


def test_acme_saved_certificate_far_from_expiry_is_kept(acme_env, tmp_path):
    ca, put = saved_cert(tmp_path, days=90)
    t, _ = acme_env(start_pebble=False, before_start=put)
    m = t.wait_for_log(r"event=acme_renewal_scheduled in=(\d+)")
    # 90 days less the 30 of renew_before, give or take the start-up.
    assert abs(int(m.group(1)) - 60 * 86400) < 600
    assert "covers_names=yes" in t.log()
    assert "event=acme_order" not in t.log() and "event=acme_failed" not in t.log()
    assert_all_services(t, ca, "mx.test", "Old Test CA", NAMES)


def test_acme_renews_a_near_expiry_certificate_without_restart(acme_env, tmp_path):
    """A saved certificate 5 days from its end (inside renew_before) is
    used at start and replaced by a new one from the CA on every service;
    the process stays the same."""
    ca, put = saved_cert(tmp_path, days=5)
    t, pebble = acme_env(before_start=put)
    pid = t.proc.pid
    t.wait_for_log(r"event=acme_loaded file=\S+ not_after=\d+ covers_names=yes")
    t.wait_log("event=acme_issued", timeout=60)
    assert_pebble_cert_everywhere(t, pebble)
    assert t.proc.pid == pid


def test_acme_renewal_timer_fires_while_running(acme_env, tmp_path):
    """The renewal timer: a certificate whose renewal falls due a few
    seconds after start is renewed when the timer fires."""
    ca, put = saved_cert(tmp_path, days=31)
    # notAfter is 31 days from now: renewal due in about 4 seconds.
    t, pebble = acme_env(before_start=put, config={"renew_before": f"{31 * 86400 - 4}s"})
    m = t.wait_for_log(r"event=acme_renewal_scheduled in=(\d+)")
    assert 0 < int(m.group(1)) <= 4
    assert "event=acme_order" not in t.log()
    assert_all_services(t, ca, "mx.test", "Old Test CA", NAMES)
    t.wait_log("event=acme_issued", timeout=60)
    assert_pebble_cert_everywhere(t, pebble)


def test_acme_ca_down_at_start_keeps_the_old_certificate_and_retries(acme_env, tmp_path):
    """The CA does not answer at start: tern serves with the certificate it
    has (here a near-expiry one it wants to replace), logs each failure,
    backs off (1s, 2s, ...) and gets the certificate once the CA is up."""
    ca, put = saved_cert(tmp_path, days=5)
    t, pebble = acme_env(start_pebble=False, before_start=put)
    t.wait_for_log(r"event=acme_failed level=error step=directory .*failures=1 retry_in=1$")
    t.wait_for_log(r"event=acme_failed level=error step=directory .*failures=2 retry_in=2$")
    assert_all_services(t, ca, "mx.test", "Old Test CA", NAMES)
    pebble.start()
    t.wait_log("event=acme_issued", timeout=60)
    assert_pebble_cert_everywhere(t, pebble)


def test_acme_ca_down_at_start_serves_self_signed_then_switches(acme_env):
    t, pebble = acme_env(start_pebble=False)
    t.wait_for_log(r"event=acme_failed level=error step=directory .*failures=1 ")
    selfsigned = os.path.join(t.state, "tls", "cert.pem")
    for svc in TLS_SERVICES:
        cert = peer_cert(t, svc, selfsigned, "mx.test")
        assert issuer_cn(cert) == "mx.test", svc
    pebble.start()
    t.wait_log("event=acme_issued", timeout=60)
    assert_pebble_cert_everywhere(t, pebble)


def test_acme_bad_nonces_are_retried(acme_env):
    """pebble refusing 40% of nonces (badNonce, RFC 8555 6.5): each refused
    request is sent again with the new nonce, and the order completes."""
    t, pebble = acme_env(nonce_reject=40)
    t.wait_log("event=acme_issued", timeout=90)
    assert "event=acme_bad_nonce" in t.log()
    assert_pebble_cert_everywhere(t, pebble)


@pytest.mark.parametrize("acme,services,error", [
    ({"directory": "https://ca.test/dir", "challenge": "dns-01"}, ("smtp", "https"),
     "[acme] challenge must be tls-alpn-01 or http-01"),
    ({"directory": "http://ca.test/dir"}, ("smtp", "https"), "[acme] directory must be an https:// URL"),
    ({"directory": "https://ca.test/dir", "challenge": "http-01"}, ("smtp", "https"),
     "[acme] challenge http-01 needs an [http] listen"),
    ({"directory": "https://ca.test/dir"}, ("smtp", "http"),
     "[acme] challenge tls-alpn-01 needs an [https] listen"),
])
def test_acme_config_errors(make_tern, acme, services, error):
    t = make_tern(start=False, services=services, config={"acme": acme})
    p = t.cli("check-config")
    assert p.returncode != 0 and error in p.stderr, p.stderr


def test_acme_off_by_default_and_http_01_path_is_404(make_tern):
    """Without [acme] directory nothing is ordered and no token is
    answered."""
    import http.client
    t = make_tern(services=("smtp", "http", "https"))
    c = http.client.HTTPConnection("127.0.0.1", t.port("http"), timeout=10)
    c.request("GET", "/.well-known/acme-challenge/abc", headers={"Host": "mx.test"})
    assert c.getresponse().status == 404
    t.wait_log("event=web_request")
    assert "event=acme_" not in t.log()
    assert not os.path.exists(os.path.join(t.state, "acme"))


def test_acme_tls_alpn_without_a_challenge_is_refused(make_tern):
    """ALPN acme-tls/1 gets a validation certificate or no handshake at
    all (RFC 8737 3); other ALPN offers are not agreed and get the normal
    certificate."""
    t = make_tern(services=("smtp", "https"))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    s = socket.create_connection(("127.0.0.1", t.port("https")), timeout=10)
    with pytest.raises(ssl.SSLError):
        ctx.wrap_socket(s, server_hostname="mx.test")
    s.close()
    ctx2 = ssl.create_default_context(cafile=os.path.join(t.state, "tls", "cert.pem"))
    ctx2.set_alpn_protocols(["h2", "http/1.1"])
    with ctx2.wrap_socket(socket.create_connection(("127.0.0.1", t.port("https")), timeout=10),
                          server_hostname="mx.test") as tls:
        assert tls.selected_alpn_protocol() is None
        assert issuer_cn(tls.getpeercert()) == "mx.test"


def test_acme_ca_certificate_is_verified(acme_env, tmp_path):
    """The directory's TLS certificate must chain to ca_file: another CA
    is a failure (logged, retried), and nothing is ordered."""
    other = make_ca(str(tmp_path / "other-ca"), "Unrelated CA")
    t, _ = acme_env(config={"ca_file": other})
    m = t.wait_for_log(r"event=acme_failed level=error step=directory error=(.*) failures=1 ")
    assert "certificate verify failed" in m.group(1), m.group(0)
    assert "event=acme_account" not in t.log()


def test_acme_failed_validation_is_logged_and_retried(acme_env):
    """The CA cannot reach tern (its validation port is wrong): the
    authorization becomes invalid, the failure is logged with the CA's
    reason, the order is tried again with back-off, and tern keeps its
    self-signed certificate."""
    t, pebble = acme_env("http-01", validate_port=free_port())
    m = t.wait_for_log(r"event=acme_failed level=error step=authz_poll error=(.*) failures=1 retry_in=1$")
    assert "is invalid" in m.group(1) and "urn:ietf:params:acme:error:connection" in m.group(1), m.group(0)
    t.wait_for_log(r"event=acme_failed level=error step=authz_poll .* failures=2 retry_in=2$")
    assert t.log().count("event=acme_order ") >= 2 and "event=acme_issued" not in t.log()
    cert = peer_cert(t, "https", os.path.join(t.state, "tls", "cert.pem"), "mx.test")
    assert issuer_cn(cert) == "mx.test"


def test_acme_saved_certificate_for_other_names_is_replaced(acme_env, tmp_path):
    """[acme] domains grew since the saved certificate was issued: it is
    used at start but a new one for every name is ordered at once."""
    ca, put = saved_cert(tmp_path, days=90, names=["mx.test"])
    t, pebble = acme_env(before_start=put)
    t.wait_for_log(r"event=acme_loaded file=\S+ not_after=\d+ covers_names=no")
    t.wait_log("event=acme_issued", timeout=60)
    assert_pebble_cert_everywhere(t, pebble)

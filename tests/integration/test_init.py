"""`tern init`: a production config that check-config accepts and that
starts tern, a DKIM key, a postmaster account whose printed password logs
in, and the DNS records (through named-checkzone).  A second run keeps
everything; --force rewrites the config only."""
import os
import re
import smtplib
import ssl
import subprocess

from conftest import TERN_BIN
from test_dns_records import checkzone, rrs, txt

DOMAIN = "example.test"
HOST = "mx.example.test"
PORTS = {"smtp": 25, "submission": 587, "submissions": 465, "pop3": 110, "pop3s": 995,
         "imap": 143, "imaps": 993, "http": 80, "https": 443}
PASSWORD = re.compile(r"added postmaster@example\.test to \S+; its password, shown only now: (\S+)\n")


class Init:
    def __init__(self, base):
        self.base = str(base)
        self.conf = os.path.join(self.base, "etc", "tern.conf")
        self.state = os.path.join(self.base, "state")
        self.key = os.path.join(self.state, "dkim", f"tern._domainkey.{DOMAIN}.pem")
        self.users = os.path.join(self.state, "users")

    def run(self, *extra, domain=DOMAIN):
        return subprocess.run([TERN_BIN, "init", "--domain", domain, "--hostname", HOST, "-c", self.conf,
                               "--state-dir", self.state, *extra], capture_output=True, text=True, timeout=60)

    def files(self):
        out = {}
        for p in (self.conf, self.key, self.users):
            with open(p, "rb") as f:
                out[p] = (f.read(), os.stat(p).st_mtime_ns)
        return out


def check_config(path):
    return subprocess.run([TERN_BIN, "check-config", "-c", path], capture_output=True, text=True, timeout=30)


def sections(text):
    """{section: {key: value}} of the live (uncommented) lines."""
    out, sec = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            sec = line.strip("[]")
            out.setdefault(sec, {})
            continue
        k, v = line.split("=", 1)
        out[sec][k.strip()] = re.split(r"\s[;#]", v, maxsplit=1)[0].strip()
    return out


def public_key_b64(pem):
    der = subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    import base64
    return base64.b64encode(der).decode()


def test_init_on_an_empty_directory(tmp_path):
    i = Init(tmp_path / "empty")
    r = i.run()
    assert r.returncode == 0, r.stderr
    assert check_config(i.conf).returncode == 0
    with open(i.conf) as f:
        conf = sections(f.read())
    for sec, port in PORTS.items():
        assert conf[sec]["listen"] == f"0.0.0.0:{port}, [::]:{port}", sec
    assert conf["server"]["hostname"] == HOST and conf["server"]["state_dir"] == i.state
    assert conf["domains"]["local"] == DOMAIN
    assert conf["tls"] == {"cert": i.state + "/tls/cert.pem", "key": i.state + "/tls/key.pem"}
    assert "acme" not in conf           # no --acme-email: off
    # The key is private; the password is printed once and stored hashed.
    assert os.stat(i.key).st_mode & 0o777 == 0o600
    assert os.stat(i.users).st_mode & 0o777 == 0o600
    pw = PASSWORD.search(r.stderr).group(1)
    assert len(pw) == 20
    with open(i.users) as f:
        users = f.read()
    assert users.startswith("postmaster@example.test:{CRYPT}") and pw not in users
    assert pw not in r.stdout
    # Standard output is the records only, and they pass named-checkzone.
    z = checkzone(tmp_path, r.stdout)
    assert z.returncode == 0, z.stdout + z.stderr + r.stdout
    by = {}
    for name, typ, data in rrs(r.stdout):
        by.setdefault((name, typ), []).append(data)
    assert by[(DOMAIN + ".", "MX")] == [f"10 {HOST}."]
    dkim = txt(by[(f"tern._domainkey.{DOMAIN}.", "TXT")][0])
    assert dkim == "v=DKIM1; k=rsa; p=" + public_key_b64(i.key)
    srv = {n.split(".")[0]: v[0].split() for (n, typ), v in by.items() if typ == "SRV"}
    for name, port in (("_imaps", 993), ("_imap", 143), ("_pop3s", 995), ("_pop3", 110),
                       ("_submissions", 465), ("_submission", 587), ("_autodiscover", 443)):
        assert srv[name][2:] == [str(port), HOST + "."], name


def test_init_twice_keeps_everything(tmp_path):
    i = Init(tmp_path)
    first = i.run()
    assert first.returncode == 0, first.stderr
    before = i.files()
    second = i.run()
    assert second.returncode == 0, second.stderr
    assert i.files() == before          # not one byte, not even rewritten
    assert f"kept {i.conf} (it exists; --force rewrites it)" in second.stderr
    assert f"kept the DKIM key of {DOMAIN}" in second.stderr
    assert f"kept the account postmaster@{DOMAIN}" in second.stderr
    assert PASSWORD.search(second.stderr) is None and "password" not in second.stderr
    assert second.stdout == first.stdout
    # A kept config that lacks the domain is an error, not a silent success.
    other = i.run(domain="other.test")
    assert other.returncode != 0 and "other.test is not in [domains] local" in other.stderr
    assert i.files() == before


def test_init_force_rewrites_the_config_only(tmp_path):
    i = Init(tmp_path)
    assert i.run().returncode == 0
    with open(i.conf) as f:
        generated = f.read()
    with open(i.conf, "a") as f:
        f.write("[smtp]\nmax_recipients = 7\n")
    before = i.files()
    r = i.run("--force")
    assert r.returncode == 0, r.stderr
    assert f"rewrote {i.conf}" in r.stderr
    after = i.files()
    with open(i.conf) as f:
        assert f.read() == generated
    assert after[i.key] == before[i.key] and after[i.users] == before[i.users]
    assert check_config(i.conf).returncode == 0
    assert not [n for n in os.listdir(os.path.dirname(i.conf)) if ".tmp." in n]


def test_init_acme_section(tmp_path):
    i = Init(tmp_path)
    r = i.run("--acme-email", "admin@example.test")
    assert r.returncode == 0, r.stderr
    assert check_config(i.conf).returncode == 0
    with open(i.conf) as f:
        text = f.read()
    example = subprocess.run([TERN_BIN, "example-config"], capture_output=True, text=True).stdout
    want = {"email": "admin@example.test", "directory": "https://acme-v02.api.letsencrypt.org/directory",
            "challenge": "tls-alpn-01"}
    if "\n[acme]\n" in example:
        assert sections(text)["acme"] == want
    else:
        # This build reads no [acme] keys: they are there, commented out.
        assert "acme" not in sections(text)
        for k, v in want.items():
            assert f"\n;{k} = {v}\n" in text
        assert "[acme] section" in r.stderr
    bad = Init(tmp_path / "bad").run("--acme-email", "a@b\n[x]")
    assert bad.returncode != 0 and not os.path.exists(Init(tmp_path / "bad").conf)


def test_init_config_starts_tern_and_the_postmaster_logs_in(make_tern, tmp_path):
    t = make_tern(start=False, services=tuple(PORTS))
    i = Init(tmp_path / "init")
    r = i.run()
    assert r.returncode == 0, r.stderr
    pw = PASSWORD.search(r.stderr).group(1)
    # The same config on test ports.
    with open(i.conf) as f:
        text = f.read()
    for sec in PORTS:
        text, n = re.subn(rf"(\[{sec}\]\nlisten = )[^\t\n]*", rf"\g<1>127.0.0.1:{t.port(sec)}", text)
        assert n == 1, sec
    with open(t.conf_path, "w") as f:
        f.write(text)
    assert check_config(t.conf_path).returncode == 0
    t.start()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=10) as c:
        c.starttls(context=ctx)
        assert c.login(f"postmaster@{DOMAIN}", pw)[0] == 235
    with smtplib.SMTP("127.0.0.1", t.port("submission"), timeout=10) as c:
        c.starttls(context=ctx)
        try:
            c.login(f"postmaster@{DOMAIN}", pw + "x")
            assert False, "a wrong password logged in"
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code == 535
    with smtplib.SMTP_SSL("127.0.0.1", t.port("submissions"), timeout=10, context=ctx) as c:
        assert c.login(f"postmaster@{DOMAIN}", pw)[0] == 235
    t.wait_log("event=auth", 1)
    assert pw not in t.log()

"""SMTP AUTH (RFC 4954) against the real binary: every mechanism chosen
explicitly, the seeds' dialogs byte for byte, every reply code of the
issue, brute-force throttling, the users file re-read on change."""
import os
import signal
import time

import pytest

from authutil import Dialog, Scram, b64, client_tls, cram_md5

SEED_USER = "bhwang"
SEED_PASSWORD = "mypassword!mypassword!!"
UNTRUSTED = {"relay": {"trusted_networks": "10.255.0.0/16"}}


def submit(t, service="submission"):
    c = t.smtp(service)
    c.ehlo("client.test")
    c.starttls(context=client_tls())
    c.ehlo("client.test")
    return c


def send_one(c, frm, to, subject="hi"):
    c.sendmail(frm, [to], f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody\r\n")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"])
def test_each_mechanism_after_starttls(make_tern, mech):
    t = make_tern(services=("smtp", "submission"), config=UNTRUSTED)
    c = submit(t)
    assert set(c.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"}
    c.user, c.password = "alice@example.test", "alicepw"
    if mech == "SCRAM-SHA-256":
        obj = Scram("alice@example.test", "alicepw")
        code, text = c.auth(mech, obj)
        assert obj.server_ok
    else:
        code, text = c.auth(mech, getattr(c, "auth_" + mech.lower().replace("-", "_")))
    assert (code, text) == (235, b"2.7.0 Authentication successful")
    send_one(c, "alice@example.test", "bob@example.test", subject=mech)
    c.quit()
    msg = t.wait_messages("bob@example.test", 1)[0]
    assert b"with ESMTPSA" in msg and f"Subject: {mech}".encode() in msg
    assert "alicepw" not in t.log()


@pytest.mark.parametrize("scheme,mechs", [("crypt", ["PLAIN", "LOGIN"]),
                                          ("scram-sha-256", ["PLAIN", "LOGIN", "SCRAM-SHA-256"])])
def test_stored_schemes(make_tern, scheme, mechs):
    t = make_tern(services=("submission",))
    r = t.cli("user", "add", "carol@example.test", "--scheme", scheme, input="carolpw\n")
    assert r.returncode == 0, r.stderr
    # the server notices the changed file on its next tick: alice, bob, carol
    t.wait_log("event=reload reason=users_file_changed users=3")
    for mech in mechs:
        c = submit(t)
        c.user, c.password = "carol@example.test", "carolpw"
        if mech == "SCRAM-SHA-256":
            code, _ = c.auth(mech, Scram("carol@example.test", "carolpw"))
        else:
            code, _ = c.auth(mech, getattr(c, "auth_" + mech.lower()))
        assert code == 235, mech
        c.quit()


def test_seed_auth_login_dialog(make_tern):
    t = make_tern(users={f"{SEED_USER}@example.test": SEED_PASSWORD})
    d = Dialog(t.port())
    ehlo = d.cmd("EHLO ABCDEFG")
    assert "250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n" in ehlo
    assert "250-AUTH=LOGIN PLAIN\r\n" in ehlo
    assert d.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n"
    assert d.cmd("Ymh3YW5n") == "334 UGFzc3dvcmQ6\r\n"
    assert d.cmd("bXlwYXNzd29yZCFteXBhc3N3b3JkISE=") == "235 2.7.0 Authentication successful\r\n"
    d.close()


def test_seed_auth_plain_dialog(make_tern):
    t = make_tern(users={f"{SEED_USER}@example.test": SEED_PASSWORD})
    d = Dialog(t.port())
    d.cmd("EHLO ABCDEFG")
    assert d.cmd("AUTH PLAIN") == "334 \r\n"
    assert d.cmd("AGJod2FuZwBteXBhc3N3b3JkIW15cGFzc3dvcmQhIQ==") == "235 2.7.0 Authentication successful\r\n"
    d.close()
    # and with the initial response on the AUTH line
    d = Dialog(t.port())
    d.cmd("EHLO ABCDEFG")
    assert d.cmd("AUTH PLAIN AGJod2FuZwBteXBhc3N3b3JkIW15cGFzc3dvcmQhIQ==").startswith("235 2.7.0")
    d.close()


def test_seed_winmail_dialog(make_tern):
    """The Winmail example: lower-case `auth login`, then mail to a local user."""
    t = make_tern(users={"costa@amaxit.net": "1982214", "test2@domain.com": "x"},
                  domains="amaxit.net domain.com")
    d = Dialog(t.port())
    ehlo = d.cmd("ehlo client")
    assert ehlo.index("250-AUTH ") < ehlo.index("250-AUTH=LOGIN PLAIN")
    assert d.cmd("auth login") == "334 VXNlcm5hbWU6\r\n"
    assert d.cmd("Y29zdGFAYW1heGl0Lm5ldA==") == "334 UGFzc3dvcmQ6\r\n"
    assert d.cmd("MTk4MjIxNA==").startswith("235 ")
    assert d.cmd("mail from:<test1@domain.com>").startswith("250")
    assert d.cmd("rcpt to:<test2@domain.com>").startswith("250")
    assert d.cmd("data").startswith("354")
    assert d.cmd("From: test1@domain.com\r\nTo: test2@domain.com\r\nDate: Mon, 25 Oct 2004 14:24:27 +0800\r\n"
                 "Subject: test mail\r\nHi, test2\r\nThis is a test mail, you don't reply it.\r\n.").startswith("250")
    assert d.cmd("quit").startswith("221")
    t.wait_messages("test2@domain.com", 1)


def test_login_with_initial_response(make_tern):
    t = make_tern()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH LOGIN " + b64("alice@example.test")) == "334 UGFzc3dvcmQ6\r\n"
    assert d.cmd(b64("alicepw")).startswith("235 2.7.0")


def test_cram_md5_dialog(make_tern):
    t = make_tern()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    r = d.cmd("AUTH CRAM-MD5")
    assert r.startswith("334 ")
    assert d.cmd(cram_md5("alice@example.test", "alicepw", r[4:].strip())).startswith("235 2.7.0")


def test_bare_user_name_is_first_local_domain(make_tern):
    t = make_tern()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0alice\0alicepw")).startswith("235")
    # the session is alice@example.test: she may send as herself
    assert d.cmd("MAIL FROM:<alice@example.test>").startswith("250")


def test_failure_codes(make_tern):
    t = make_tern(config={"auth": {"max_failures": "100"}})
    d = Dialog(t.port())
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("503 5.5.1")  # no EHLO
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong")).startswith("535 5.7.8")
    assert d.cmd("AUTH PLAIN " + b64("\0nobody@example.test\0wrong")).startswith("535 5.7.8")
    assert d.cmd("AUTH PLAIN !!!notbase64").startswith("501 5.5.2")
    assert d.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n"
    assert d.cmd("*").startswith("501 5.5.2")
    assert d.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n"
    assert d.cmd("@@@@").startswith("501 5.5.2")
    assert d.cmd("AUTH DIGEST-MD5").startswith("504 5.5.4")
    assert d.cmd("AUTH").startswith("501 5.5.4")
    d.close()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("235 2.7.0")
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("503 5.5.1")
    d.close()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    d.cmd("MAIL FROM:<x@far.test>")
    assert d.cmd("AUTH LOGIN").startswith("503 5.5.1")   # not inside a transaction
    assert "alicepw" not in t.log() and "wrong" not in t.log()


def test_auth_line_length(make_tern):
    t = make_tern(config={"auth": {"max_failures": "100"}})
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN") == "334 \r\n"
    # 12288 octets is allowed (and here is simply not a valid message) ...
    assert d.cmd("A" * 12288).startswith("501 5.5.2")
    assert d.cmd("AUTH PLAIN") == "334 \r\n"
    # ... 12289 is not; the exchange is over and the session goes on
    assert d.cmd("A" * 12289).startswith("500 5.5.6")
    assert d.cmd("NOOP").startswith("250")
    assert d.cmd("AUTH PLAIN") == "334 \r\n"
    assert d.cmd("A" * 40000).startswith("500 5.5.6")
    assert d.cmd("NOOP").startswith("250")


def test_plaintext_needs_tls(make_tern):
    t = make_tern(services=("smtp", "submission"), config=UNTRUSTED)
    d = Dialog(t.port("submission"))
    ehlo = d.cmd("EHLO x")
    assert "250-STARTTLS" in ehlo
    assert "250-AUTH CRAM-MD5 SCRAM-SHA-256\r\n" in ehlo and "AUTH=" not in ehlo
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("538 5.7.11")
    assert d.cmd("AUTH LOGIN").startswith("538 5.7.11")
    assert d.cmd("MAIL FROM:<alice@example.test>").startswith("530 5.7.0")
    d.starttls()
    ehlo = d.cmd("EHLO x")
    assert "STARTTLS" not in ehlo and "250-AUTH PLAIN LOGIN" in ehlo
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("235")


def test_allow_plaintext(make_tern):
    t = make_tern(services=("submission",), config={"relay": {"trusted_networks": "10.255.0.0/16"},
                                                    "auth": {"allow_plaintext": "yes"}})
    d = Dialog(t.port("submission"))
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("235")


def test_throttling_and_block(make_tern):
    t = make_tern(config={"auth": {"max_failures": "3"}})
    d = Dialog(t.port())
    d.cmd("EHLO x")
    times = []
    for expect in ("535 5.7.8", "535 5.7.8", "421 4.7.0"):
        start = time.time()
        r = d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0guess"))
        times.append(time.time() - start)
        assert r.startswith(expect), r
    assert times[0] >= 0.2 and times[1] >= 0.45 and times[2] >= 0.9, times
    assert d.sock.recv(100) == b""   # closed after the 421
    # blocked: even the right password gets 421 from this address now
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("421 4.7.0")
    # but mail for local users still flows on port 25
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("MAIL FROM:<x@far.test>").startswith("250")
    assert d.cmd("RCPT TO:<bob@example.test>").startswith("250")
    log = t.log()
    assert "event=auth_blocked" in log and "failures=3" in log and "guess" not in log


def test_pipelined_commands_wait_for_delayed_failure(make_tern):
    t = make_tern()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    d.send("AUTH PLAIN " + b64("\0alice@example.test\0nope") + "\r\nNOOP\r\n")
    from conftest import recv_until, codes
    assert codes(recv_until(d.sock, 2)) == [535, 250]


def test_tempfail_for_broken_secret(make_tern):
    t = make_tern(start=False)
    with open(t.users_path, "a") as f:
        f.write("dave@example.test:{SCRAM-SHA-256}not,a,valid,secret\n")
    t.start()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    r = d.cmd("AUTH PLAIN " + b64("\0dave@example.test\0pw"))
    # the server's own data is broken: a temporary failure, not the client's fault
    assert r.startswith("454 4.7.0"), r
    assert "users_bad_secret" in t.log()


def test_users_file_reread_on_change_and_sighup(make_tern):
    t = make_tern()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0erin@example.test\0erinpw")).startswith("535")
    r = t.cli("user", "add", "erin@example.test", "--scheme", "plain", input="erinpw\n")
    assert r.returncode == 0, r.stderr
    # Wait for the reload rather than retrying AUTH: failed attempts count
    # towards [auth] max_failures, and a slow tick would end in a block.
    t.wait_log("event=reload reason=users_file_changed users=3")
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0erin@example.test\0erinpw")).startswith("235")
    # change the password behind the server's back, keeping the mtime, then SIGHUP
    st = os.stat(t.users_path)
    r = t.cli("user", "passwd", "erin@example.test", "--scheme", "plain", input="newpw\n")
    assert r.returncode == 0, r.stderr
    os.utime(t.users_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    t.proc.send_signal(signal.SIGHUP)
    t.wait_log("event=reload reason=sighup")
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0erin@example.test\0newpw")).startswith("235")


def test_user_command(make_tern):
    t = make_tern(start=False, users={})
    r = t.cli("user", "add", "frank@example.test", input="s3cret pass\n")
    assert r.returncode == 0, r.stderr
    text = open(t.users_path).read()
    assert text.startswith("frank@example.test:{CRYPT}$y$") and "s3cret" not in text
    assert os.stat(t.users_path).st_mode & 0o777 == 0o600
    assert t.cli("user", "add", "frank@example.test", input="x\n").returncode != 0   # exists
    assert t.cli("user", "passwd", "nobody@example.test", input="x\n").returncode != 0
    assert t.cli("user", "add", "gina@example.test", input="\n").returncode != 0     # empty
    assert t.cli("user", "add", "../evil@example.test", input="x\n").returncode != 0
    r = t.cli("user", "add", "gina@example.test", "--scheme", "scram-sha-256", input="ginapw\n")
    assert r.returncode == 0, r.stderr
    assert "gina@example.test:{SCRAM-SHA-256}4096," in open(t.users_path).read()
    assert t.cli("user", "list").stdout.split() == ["frank@example.test", "gina@example.test"]
    r = t.cli("user", "passwd", "frank@example.test", "--scheme", "plain", input="newpass\n")
    assert r.returncode == 0 and "frank@example.test:{PLAIN}newpass" in open(t.users_path).read()
    t.start()
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0frank@example.test\0newpass")).startswith("235")
    assert t.cli("user", "del", "frank@example.test").returncode == 0
    assert t.cli("user", "del", "frank@example.test").returncode != 0
    assert t.cli("user", "list").stdout.split() == ["gina@example.test"]
    t.wait_log("event=reload reason=users_file_changed users=1")
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0frank@example.test\0newpass")).startswith("535")


def test_mechanisms_offered_match_the_stored_secrets(make_tern):
    """CRAM-MD5 needs {PLAIN} secrets: with a {CRYPT} user it is not offered,
    so clients that pick the strongest mechanism (curl) still log in."""
    import subprocess
    t = make_tern(services=("smtp", "pop3"), users={})
    r = t.cli("user", "add", "carol@example.test", "--scheme", "crypt", input="carolpw\n")
    assert r.returncode == 0, r.stderr
    t.restart()
    with t.smtp() as c:
        c.ehlo()
        auth = c.esmtp_features.get("auth", "")
        assert "PLAIN" in auth and "CRAM-MD5" not in auth and "SCRAM-SHA-256" not in auth
    with t.smtp() as c:
        c.sendmail("x@example.test", ["carol@example.test"], b"Subject: hi\r\n\r\nbody\r\n")
    t.wait_messages("carol@example.test", 1)
    p = subprocess.run(["curl", "-sS", f"pop3://127.0.0.1:{t.port('pop3')}/", "-u", "carol@example.test:carolpw"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("1 ")

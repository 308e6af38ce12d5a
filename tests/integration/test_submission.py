"""Submission policy (RFC 6409, RFC 8314): AUTH before MAIL, sender
ownership, relaying only for authenticated or trusted clients, the
open-relay battery, MSA additions, relayed mail waiting in the queue, and
real clients (swaks, curl, msmtp) delivering into Maildirs."""
import json
import os
import re
import subprocess
import time

import pytest

from authutil import Dialog, b64, client_tls
from conftest import codes, free_port, recv_until

UNTRUSTED = {"relay": {"trusted_networks": "10.255.0.0/16"}}


def deferring_relay():
    """Remote mail goes to a smarthost port where nobody listens, so it
    waits in the queue (and no DNS is asked)."""
    return {"relay": {"trusted_networks": "10.255.0.0/16",
                      "smarthost": f"[127.0.0.1]:{free_port()}"}}


def login(d, user="alice@example.test", pw="alicepw"):
    d.cmd("EHLO client.test")
    r = d.cmd("AUTH PLAIN " + b64(f"\0{user}\0{pw}"))
    assert r.startswith("235"), r


def sub_dialog(t, service="submission"):
    if service == "submissions":
        return Dialog(t.port(service), tls=True)
    d = Dialog(t.port(service))
    d.cmd("EHLO client.test")
    d.starttls()
    return d


@pytest.mark.parametrize("service", ["submission", "submissions"])
def test_auth_required_before_mail(make_tern, service):
    t = make_tern(services=("smtp", service))
    d = sub_dialog(t, service)
    d.cmd("EHLO client.test")
    assert d.cmd("MAIL FROM:<alice@example.test>") == "530 5.7.0 Authentication required\r\n"
    assert d.cmd("RCPT TO:<bob@example.test>").startswith("530 5.7.0")
    assert d.cmd("DATA").startswith("530 5.7.0")
    assert d.cmd("VRFY bob").startswith("530 5.7.0")
    assert d.cmd("NOOP").startswith("250")
    login(d)
    assert d.cmd("MAIL FROM:<alice@example.test>").startswith("250")


def test_port25_takes_local_mail_without_auth(make_tern):
    t = make_tern(config=UNTRUSTED)
    d = Dialog(t.port())
    d.cmd("EHLO client.test")
    assert d.cmd("MAIL FROM:<someone@far.test>").startswith("250")
    assert d.cmd("RCPT TO:<bob@example.test>").startswith("250")


def test_sender_ownership(make_tern, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("sales@example.test: alice@example.test, bob@example.test\n")
    t = make_tern(services=("smtp", "submission"), config={"aliases": {"file": str(aliases)}})
    d = sub_dialog(t)
    login(d)
    r = d.cmd("MAIL FROM:<bob@example.test>")
    assert r.startswith("553 5.7.1"), r
    assert d.cmd("MAIL FROM:<someone@far.test>").startswith("553 5.7.1")
    assert d.cmd("MAIL FROM:<>").startswith("553 5.7.1")
    assert d.cmd("MAIL FROM:<ALICE@Example.Test>").startswith("250")
    d.cmd("RSET")
    assert d.cmd("MAIL FROM:<sales@example.test>").startswith("250")  # an alias reaching alice
    # port 25 with AUTH: the MX rules, no ownership check
    d = Dialog(t.port())
    login(d)
    assert d.cmd("MAIL FROM:<bob@example.test>").startswith("250")


def test_sender_any(make_tern):
    t = make_tern(services=("smtp", "submission"), config={"submission": {"sender_any": "yes"}})
    d = sub_dialog(t)
    login(d)
    assert d.cmd("MAIL FROM:<bob@example.test>").startswith("250")


def test_relay_needs_auth_or_trusted_network(make_tern):
    t = make_tern(services=("smtp", "submission"), config=UNTRUSTED)
    d = Dialog(t.port())
    d.cmd("EHLO client.test")
    d.cmd("MAIL FROM:<someone@far.test>")
    assert d.cmd("RCPT TO:<victim@elsewhere.test>").startswith("554 5.7.1")
    # authenticated on port 25: relaying is allowed
    d = Dialog(t.port())
    d.cmd("EHLO client.test")
    d.starttls()
    login(d)
    d.cmd("MAIL FROM:<alice@example.test>")
    assert d.cmd("RCPT TO:<friend@elsewhere.test>").startswith("250")
    # trusted network (the default includes 127.0.0.0/8)
    t2 = make_tern()
    d = Dialog(t2.port())
    d.cmd("EHLO client.test")
    d.cmd("MAIL FROM:<app@example.test>")
    assert d.cmd("RCPT TO:<friend@elsewhere.test>").startswith("250")


BATTERY = [
    "<bob%elsewhere.test@example.test>",
    "<elsewhere.test!bob@example.test>",
    "<@example.test:bob@elsewhere.test>",
    "<@mx.test,@example.test:bob@elsewhere.test>",
    '<"bob@elsewhere.test"@example.test>',
    '<"bob%elsewhere.test"@example.test>',
    "<bob@elsewhere.test>",
    "<bob@elsewhere.test.>",
    "<bob@[127.0.0.2]>",
    "<bob%elsewhere.test@[127.0.0.1]>",
]


@pytest.mark.parametrize("rcpt", BATTERY)
def test_open_relay_battery(make_tern, rcpt):
    t = make_tern(config=UNTRUSTED)
    d = Dialog(t.port())
    d.cmd("EHLO client.test")
    assert d.cmd("MAIL FROM:<spammer@far.test>").startswith("250")
    r = d.cmd(f"RCPT TO:{rcpt}")
    assert r[:1] == "5", r
    assert r.startswith("554 5.7.1") or r.startswith("501") or r.startswith("553") or r.startswith("550"), r
    assert d.cmd("DATA")[:1] == "5"
    assert os.listdir(os.path.join(t.state, "queue", "msg")) == []


def test_msa_adds_date_and_message_id(make_tern):
    t = make_tern(services=("smtp", "submission"))
    d = sub_dialog(t)
    login(d)
    for body in ("Subject: bare\r\n\r\nno date here\r\n",
                 "Subject: has\r\nDate: Mon, 25 Oct 2004 14:24:27 +0800\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n",
                 "Subject: only headers\r\n"):
        d.cmd("MAIL FROM:<alice@example.test>")
        d.cmd("RCPT TO:<bob@example.test>")
        d.cmd("DATA")
        assert d.cmd(body + ".").startswith("250")
    msgs = t.wait_messages("bob@example.test", 3)
    by_subject = {re.search(rb"Subject: ([^\n]*)", m).group(1): m for m in msgs}
    bare = by_subject[b"bare"]
    head, _, tail = bare.partition(b"\n\n")
    assert re.search(rb"\nDate: \w{3}, \d{2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\n", head + b"\n")
    assert re.search(rb"\nMessage-ID: <[0-9A-F]+\.[0-9a-f]{8}@mx\.test>", head)
    assert tail == b"no date here\n"
    has = by_subject[b"has"]
    assert has.count(b"Date:") == 1 and has.count(b"Message-ID:") == 1 and b"<x@y>" in has
    only = by_subject[b"only headers"]
    assert b"Date: " in only and b"Message-ID: <" in only


def test_mx_port_adds_nothing(make_tern):
    t = make_tern()
    d = Dialog(t.port())
    d.cmd("EHLO client.test")
    d.cmd("MAIL FROM:<x@far.test>")
    d.cmd("RCPT TO:<bob@example.test>")
    d.cmd("DATA")
    assert d.cmd("Subject: mx\r\n\r\nbody\r\n.").startswith("250")
    m = t.wait_messages("bob@example.test", 1)[0]
    assert b"Date:" not in m.split(b"Received:")[1].split(b"\n\n")[0].split(b";")[0]
    assert b"Message-ID" not in m


def test_msa_long_header_streams_on(make_tern):
    t = make_tern(services=("smtp", "submission"))
    d = sub_dialog(t)
    login(d)
    d.cmd("MAIL FROM:<alice@example.test>")
    d.cmd("RCPT TO:<bob@example.test>")
    d.cmd("DATA")
    big = "".join(f"X-Filler-{i}: {'y' * 90}\r\n" for i in range(800))   # > 64 KiB of header
    assert d.cmd("Subject: big\r\n" + big + "\r\nbody\r\n.").startswith("250")
    m = t.wait_messages("bob@example.test", 1)[0]
    assert b"X-Filler-799" in m and m.endswith(b"\n\nbody\n")
    assert b"Message-ID:" not in m   # past the bound, nothing is added


def test_relayed_mail_waits_in_queue(make_tern):
    t = make_tern(services=("smtp", "submission"), config=deferring_relay())
    d = sub_dialog(t)
    login(d)
    d.cmd("MAIL FROM:<alice@example.test>")
    assert d.cmd("RCPT TO:<friend@elsewhere.test>").startswith("250")
    assert d.cmd("RCPT TO:<bob@example.test>").startswith("250")
    d.cmd("DATA")
    r = d.cmd("Subject: out\r\n\r\nto the world\r\n.")
    assert r.startswith("250")
    qid = r.split()[-1]
    t.wait_messages("bob@example.test", 1)
    out = t.cli("queue", "list")
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if "friend@elsewhere.test" in l]
    assert len(lines) == 1 and lines[0].startswith(qid), out.stdout
    assert lines[0].split()[1] in ("pending", "deferred"), lines[0]
    js = json.loads(t.cli("queue", "list", "--json").stdout)
    remote = [e for e in js if e["recipient"] == "friend@elsewhere.test"]
    assert remote and remote[0]["local"] is False and remote[0]["sender"] == "alice@example.test"


# ---- real clients ---------------------------------------------------------------

def test_swaks_tls_auth(make_tern):
    t = make_tern(services=("smtp", "submission"), config=UNTRUSTED)
    for auth in ("PLAIN", "LOGIN", "CRAM-MD5"):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(t.port("submission")),
                            "--tls", "--auth", auth, "--auth-user", "alice@example.test",
                            "--auth-password", "alicepw", "--from", "alice@example.test",
                            "--to", "bob@example.test", "--header", f"Subject: swaks {auth}",
                            "--helo", "client.test"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "235 2.7.0" in r.stdout
    msgs = t.wait_messages("bob@example.test", 3)
    assert all(b"ESMTPSA (TLSv1.3" in m for m in msgs)


def test_swaks_implicit_tls(make_tern):
    t = make_tern(services=("smtp", "submissions"))
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(t.port("submissions")),
                        "--tlsc", "--auth", "LOGIN", "--auth-user", "alice@example.test",
                        "--auth-password", "alicepw", "--from", "alice@example.test",
                        "--to", "bob@example.test", "--helo", "client.test"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    t.wait_messages("bob@example.test", 1)


def test_swaks_wrong_password(make_tern):
    t = make_tern(services=("smtp", "submission"))
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(t.port("submission")),
                        "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.test",
                        "--auth-password", "bad", "--from", "alice@example.test",
                        "--to", "bob@example.test", "--helo", "client.test"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "535 5.7.8" in r.stdout


@pytest.mark.parametrize("url_service", [("smtp", "submission"), ("smtps", "submissions")])
def test_curl_ssl_reqd(make_tern, tmp_path, url_service):
    scheme, service = url_service
    t = make_tern(services=("smtp", service), config=UNTRUSTED)
    mail = tmp_path / "mail.txt"
    mail.write_text("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: curl\r\n\r\nvia curl\r\n")
    r = subprocess.run(["curl", "-sS", "--insecure", f"{scheme}://127.0.0.1:{t.port(service)}/client.test",
                        "--ssl-reqd", "--user", "alice@example.test:alicepw",
                        "--mail-from", "alice@example.test", "--mail-rcpt", "bob@example.test",
                        "--upload-file", str(mail)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    m = t.wait_messages("bob@example.test", 1)[0]
    assert b"via curl" in m and b"ESMTPSA" in m


def test_msmtp(make_tern, tmp_path):
    t = make_tern(services=("smtp", "submission"), config=UNTRUSTED)
    rc = tmp_path / "msmtprc"
    rc.write_text(f"""defaults
tls on
tls_starttls on
tls_trust_file {t.state}/tls/cert.pem
tls_certcheck off
logfile {tmp_path}/msmtp.log

account tern
host 127.0.0.1
port {t.port("submission")}
domain client.test
from alice@example.test
auth on
user alice@example.test
password alicepw

account default : tern
""")
    os.chmod(rc, 0o600)
    for auth in ("plain", "scram-sha-256", "cram-md5"):
        r = subprocess.run(["msmtp", "-C", str(rc), f"--auth={auth}", "bob@example.test"],
                           input=f"Subject: msmtp {auth}\n\nvia msmtp\n", capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, auth + ": " + r.stdout + r.stderr
    msgs = t.wait_messages("bob@example.test", 3)
    assert all(b"via msmtp" in m and b"Message-ID: <" in m for m in msgs)


def test_mail_auth_parameter(make_tern):
    """RFC 4954 5: AUTH=<mailbox> is accepted (xtext); without a trusted
    AUTH it counts as AUTH=<>, and the queue records only the identity
    that really authenticated."""
    t = make_tern(services=("smtp", "submission"), config=deferring_relay())
    d = Dialog(t.port())
    d.cmd("EHLO client.test")
    assert d.cmd("MAIL FROM:<x@far.test> AUTH=<>").startswith("250")
    d.cmd("RSET")
    assert d.cmd("MAIL FROM:<x@far.test> AUTH=alice+40example.test").startswith("250")
    d.cmd("RCPT TO:<bob@example.test>")
    d.cmd("DATA")
    qid = d.cmd("Subject: a\r\n\r\nx\r\n.").split()[-1]
    d.cmd("RSET")
    assert d.cmd("MAIL FROM:<x@far.test> AUTH=bad+ZZ").startswith("501")
    d = Dialog(t.port())
    d.cmd("HELO client.test")
    assert d.cmd("MAIL FROM:<x@far.test> AUTH=<>").startswith("555")
    d = sub_dialog(t)
    login(d)
    d.cmd("MAIL FROM:<alice@example.test> AUTH=alice@example.test")
    d.cmd("RCPT TO:<friend@elsewhere.test>")
    d.cmd("DATA")
    qid2 = d.cmd("Subject: b\r\n\r\nx\r\n.").split()[-1]
    show = t.cli("queue", "show", qid2).stdout
    assert "alice@example.test" in show
    assert qid != qid2


def test_port25_starttls_received_says_esmtps(make_tern):
    t = make_tern(services=("smtp", "submission"))
    d = Dialog(t.port())
    d.cmd("EHLO client.test")
    d.starttls()
    d.cmd("EHLO client.test")
    d.cmd("MAIL FROM:<x@far.test>")
    d.cmd("RCPT TO:<bob@example.test>")
    d.cmd("DATA")
    assert d.cmd("Subject: s\r\n\r\nx\r\n.").startswith("250")
    m = t.wait_messages("bob@example.test", 1)[0]
    assert re.search(rb"with ESMTPS \(TLSv1\.3 TLS_[A-Z0-9_]+\) id ", m), m[:400]
    assert b"Message-ID" not in m   # an MX adds nothing

"""Sender authentication against independent implementations: mail
submitted on 587 comes out DKIM-signed and python3-dkim (dkimpy) verifies
it; mail arriving on port 25 gets one Authentication-Results field
(RFC 8601) with SPF, DKIM and DMARC results from records a private
dnsmasq serves; an enforced DMARC p=reject is 550 5.7.1; a forged
Authentication-Results claiming tern's authserv-id is removed."""
import base64
import os
import re
import smtplib
import subprocess

import dkim
import pytest

from authutil import submission_data
from conftest import DNSMASQ, Dnsmasq

UNTRUSTED = "10.255.0.0/16"


def rsa_key(tmp_path):
    """An RSA key for the sending side (dkimpy) and its DNS record."""
    pem = subprocess.run(["openssl", "genrsa", "-traditional", "2048"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def txt_arg(name, text):
    """--txt-record with text cut into strings of at most 255 octets
    (dnsmasq splits at commas and keeps quotes: the texts have none)."""
    assert "," not in text and '"' not in text
    parts = [text[i:i + 250] for i in range(0, len(text), 250)]
    return "--txt-record=" + name + "," + ",".join(parts)


# An SPF record of about 9 KB (more than 35 strings, so the reply comes
# over TCP) whose only match for 127.0.0.1 is its last term: cut anywhere,
# it would not pass.
BIG_SPF = "v=spf1 " + " ".join(f"ip6:2001:db8:aaaa:bbbb:cccc:dddd:eeee:{i:04x}" for i in range(220)) \
    + " ip4:127.0.0.1 -all"


# The explanation of expfail.test's fail (RFC 7208 6.2), with the
# exp-only macros c and r
EXP_TEXT = "%{c} may not send mail for %{d} as %{l} ('%{o}'); asked by %{r}"


@pytest.fixture(scope="module")
def sender_key(tmp_path_factory):
    return rsa_key(tmp_path_factory.mktemp("key"))


@pytest.fixture
def dns(sender_key):
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq is not installed")
    _, rec = sender_key
    d = Dnsmasq([
        "--local=/test/",
        txt_arg("sel._domainkey.signed.test", rec),
        txt_arg("signed.test", "v=spf1 -all"),
        txt_arg("_dmarc.signed.test", "v=DMARC1; p=reject"),
        txt_arg("spfpass.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt_arg("spffail.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt_arg("spfsoft.test", "v=spf1 ~all"),
        txt_arg("rej.test", "v=spf1 -all"),
        txt_arg("_dmarc.rej.test", "v=DMARC1; p=reject"),
        txt_arg("pnone.test", "v=spf1 -all"),
        txt_arg("_dmarc.pnone.test", "v=DMARC1; p=none"),
        txt_arg("_dmarc.aligned.test", "v=DMARC1; p=reject"),
        txt_arg("quar.test", "v=spf1 -all"),
        txt_arg("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
        txt_arg("aligned.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt_arg("bigspf.test", BIG_SPF),
        txt_arg("expfail.test", "v=spf1 ip4:192.0.2.1 -all exp=why.%{d}"),
        txt_arg("why.expfail.test", EXP_TEXT),
        txt_arg("expdmarc.test", "v=spf1 -all exp=why.expfail.test"),
        txt_arg("_dmarc.expdmarc.test", "v=DMARC1; p=reject"),
    ])
    yield d.port
    d.stop()


def mx(make_tern, dns_port, **extra):
    cfg = {"relay": {"trusted_networks": UNTRUSTED}, "dns": {"servers": f"127.0.0.1:{dns_port}"}}
    for k, v in extra.items():
        cfg.setdefault(k, {}).update(v)
    return make_tern(config=cfg)


def send(t, mail_from, msg, rcpt="alice@example.test"):
    """One message over port 25; the reply to the end of data."""
    c = smtplib.SMTP("127.0.0.1", t.port(), local_hostname="client.test", timeout=30)
    try:
        c.ehlo()
        c.mail(mail_from)
        c.rcpt(rcpt)
        return c.data(msg)
    finally:
        c.close()


def ar_fields(m):
    head = m.split(b"\n\n", 1)[0].decode()
    fields = re.findall(r"^Authentication-Results:.*(?:\n[ \t].*)*", head, re.M | re.I)
    return [" ".join(f.split()) for f in fields]


def plain(frm, subject="hello", body="Hi.\n"):
    return (f"From: <{frm}>\r\nTo: <alice@example.test>\r\nSubject: {subject}\r\n"
            f"Message-ID: <m.{subject}@client.test>\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
            f"\r\n{body.replace(chr(10), chr(13) + chr(10))}").encode()


def keygen(t, domain="example.test", selector="s1", algorithm="rsa", wait=True):
    """A key made while t runs; with wait, until t has loaded it (the
    key directory is watched, not read per message)."""
    changed = t.log().count("event=dkim_keys_loaded reason=changed")
    out = t.cli("dkim", "keygen", domain, "--selector", selector, "--algorithm", algorithm)
    assert out.returncode == 0, out.stderr
    if wait:
        t.wait_log("event=dkim_keys_loaded reason=changed", n=changed + 1)
    line = [l for l in out.stdout.splitlines() if "._domainkey." in l][0]
    return "".join(re.findall(r'"([^"]*)"', line)).encode()


def test_submission_signed_and_dkimpy_verifies(make_tern):
    t = make_tern(services=("smtp", "submission"), config={"relay": {"trusted_networks": UNTRUSTED}})
    record = keygen(t)
    d = submission_data(t)
    # no Date: or Message-ID: - the MSA adds them, and they are signed
    r = d.cmd("From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: signed\r\n\r\n"
              "Body line\r\n  with  spaces  \r\n\r\n.")
    assert r.startswith("250"), r
    d.close()
    m = t.wait_messages("bob@example.test", 1)[0]
    head = m.split(b"\n\n", 1)[0]
    assert head.count(b"DKIM-Signature:") == 1, m
    sig = re.search(rb"DKIM-Signature:(.*?)\n(?![ \t])", head, re.S).group(1)
    assert b"s=s1" in sig and b"d=example.test" in sig
    assert b"message-id" in sig.lower() and b"date" in sig.lower()
    t.wait_log("event=dkim_signed")

    def dnsfunc(name, timeout=5):
        assert name == b"s1._domainkey.example.test."
        return record
    crlf = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert dkim.verify(crlf, dnsfunc=dnsfunc)
    # and a changed body does not verify: the test can fail
    assert not dkim.verify(crlf.replace(b"Body line", b"Body lime"), dnsfunc=dnsfunc)


def test_no_key_no_signature(make_tern):
    t = make_tern(services=("smtp", "submission"), config={"relay": {"trusted_networks": UNTRUSTED}})
    d = submission_data(t)
    assert d.cmd("From: alice@example.test\r\nSubject: x\r\n\r\nx\r\n.").startswith("250")
    d.close()
    m = t.wait_messages("bob@example.test", 1)[0]
    assert b"DKIM-Signature:" not in m
    assert b"Authentication-Results:" not in m   # submitted mail is not checked


@pytest.mark.parametrize("domain,result", [("spfpass.test", "pass"), ("spffail.test", "fail"),
                                           ("spfsoft.test", "softfail"), ("nospf.test", "none")])
def test_spf_results(make_tern, dns, domain, result):
    t = mx(make_tern, dns)
    code, _ = send(t, f"user@{domain}", plain(f"user@{domain}"))
    assert code == 250
    m = t.wait_messages("alice@example.test", 1)[0]
    ars = ar_fields(m)
    assert len(ars) == 1, ars
    assert ars[0].startswith("Authentication-Results: mx.test;")
    assert f"spf={result} smtp.mailfrom=user@{domain}" in ars[0], ars
    t.wait_log(f"spf={result} ")


def test_spf_record_past_8k_whole(make_tern, dns):
    """A TXT record longer than 8 KiB is read whole (it used to be cut at
    8192 octets, and this one's passing term lost)."""
    assert len(BIG_SPF) > 9000
    t = mx(make_tern, dns)
    code, _ = send(t, "user@bigspf.test", plain("user@bigspf.test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "spf=pass smtp.mailfrom=user@bigspf.test" in ar[0], ar


def pyspf_explanation(dns_port, ip, sender, helo, receiver):
    """pyspf (python3-spf) against the same dnsmasq: its result and
    explanation."""
    import dns.resolver
    import spf
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_port
    saved = dns.resolver.default_resolver
    dns.resolver.default_resolver = r
    try:
        res, _, exp = spf.query(i=ip, s=sender, h=helo, receiver=receiver, querytime=0).check()
    finally:
        dns.resolver.default_resolver = saved
    return res, exp


def test_spf_fail_explanation_in_ar(make_tern, dns):
    """A fail's exp= text, macros and all, is the reason= of its spf= in
    Authentication-Results, as pyspf expands it from the same records;
    the mail is still delivered (SPF alone never refuses)."""
    t = mx(make_tern, dns)
    code, _ = send(t, "joe@expfail.test", plain("joe@expfail.test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])[0]
    res, want = pyspf_explanation(dns, "127.0.0.1", "joe@expfail.test", "client.test", "mx.test")
    assert res == "fail"
    assert want == "127.0.0.1 may not send mail for expfail.test as joe ('expfail.test'); asked by mx.test"
    assert (f'spf=fail (explanation published for expfail.test) reason="{want}" '
            "smtp.mailfrom=joe@expfail.test") in ar, ar
    t.wait_for_log(r"event=msgauth .*spf=fail .*action=accept")


def test_spf_explanation_not_in_dmarc_reject(make_tern, dns):
    """DMARC's 550 is DMARC's: the SPF explanation, a third party's text
    about SPF, is not put into it."""
    t = mx(make_tern, dns)
    code, reply = send(t, "joe@expdmarc.test", plain("joe@expdmarc.test"))
    assert code == 550 and b"DMARC" in reply, reply
    assert b"may not send" not in reply


def test_spf_null_sender_checks_helo(make_tern, dns):
    """RFC 7208 2.4: MAIL FROM:<> is checked as postmaster@HELO."""
    t = mx(make_tern, dns)
    c = smtplib.SMTP("127.0.0.1", t.port(), local_hostname="spfpass.test", timeout=30)
    c.ehlo()
    c.mail("<>")
    c.rcpt("alice@example.test")
    code, _ = c.data(plain("mailer-daemon@spfpass.test"))
    c.close()
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "spf=pass smtp.helo=spfpass.test" in ar[0], ar


def test_spf_helo_checked_besides_mail_from(make_tern, dns):
    """RFC 7208 2.3: the HELO name is checked as well, on its own line of
    the A-R; the MAIL FROM result (DMARC's) is not changed by it."""
    t = mx(make_tern, dns)
    c = smtplib.SMTP("127.0.0.1", t.port(), local_hostname="spffail.test", timeout=30)
    c.ehlo()
    c.mail("user@spfpass.test")
    c.rcpt("alice@example.test")
    code, _ = c.data(plain("user@spfpass.test"))
    c.close()
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "spf=pass smtp.mailfrom=user@spfpass.test; spf=fail smtp.helo=spffail.test" in ar[0], ar
    t.wait_for_log(r"event=msgauth .*spf=pass .*action=accept spf_helo=fail")


def signed(sender_key, body="Hello there.\r\n"):
    pem, _ = sender_key
    msg = (b"From: Sig <sig@signed.test>\r\nTo: alice@example.test\r\nSubject: dkimpy\r\n"
           b"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <d@signed.test>\r\n\r\n" + body.encode())
    h = dkim.sign(msg, b"sel", b"signed.test", pem, include_headers=[b"from", b"to", b"subject", b"date"])
    return h + msg


def test_dkim_pass_from_dkimpy(make_tern, dns, sender_key):
    t = mx(make_tern, dns)
    code, _ = send(t, "sig@signed.test", signed(sender_key))
    assert code == 250   # SPF fails, DKIM aligned passes DMARC
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert len(ar) == 1
    assert "dkim=pass header.d=signed.test header.s=sel header.b=" in ar[0], ar
    assert "spf=fail" in ar[0] and "dmarc=pass header.from=signed.test" in ar[0], ar


def test_dkim_altered_fails_and_dmarc_rejects(make_tern, dns, sender_key):
    t = mx(make_tern, dns)
    msg = signed(sender_key).replace(b"Hello there.", b"Hello THERE.")
    code, reply = send(t, "sig@signed.test", msg)
    assert code == 550 and reply.startswith(b"5.7.1"), reply
    log = t.wait_log("event=msgauth")
    assert "dkim=fail" in log and "dmarc=fail action=reject" in log


def test_dkim_altered_fail_report_mode(make_tern, dns, sender_key):
    t = mx(make_tern, dns, checks={"dmarc": "report"})
    msg = signed(sender_key).replace(b"Hello there.", b"Hello THERE.")
    code, _ = send(t, "sig@signed.test", msg)
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert len(ar) == 1 and "dkim=fail header.d=signed.test" in ar[0], ar
    assert "dmarc=fail" in ar[0]


def test_dmarc_reject(make_tern, dns):
    t = mx(make_tern, dns)
    code, reply = send(t, "x@rej.test", plain("x@rej.test"))
    assert code == 550 and reply.startswith(b"5.7.1"), reply
    t.wait_log("dmarc=fail action=reject")
    assert t.messages("alice@example.test") == []


def test_dmarc_none_delivers_to_inbox(make_tern, dns):
    t = mx(make_tern, dns)
    code, _ = send(t, "x@pnone.test", plain("x@pnone.test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "dmarc=fail header.from=pnone.test" in ar[0], ar


def test_dmarc_quarantine_delivers_to_junk(make_tern, dns):
    t = mx(make_tern, dns)
    code, _ = send(t, "x@quar.test", plain("x@quar.test"))
    assert code == 250
    t.wait_log("dmarc=fail action=quarantine")
    junk = os.path.join(t.maildir("alice@example.test"), ".Junk")
    deadline = __import__("time").time() + 30
    while not (os.path.isdir(os.path.join(junk, "new")) and os.listdir(os.path.join(junk, "new"))):
        assert __import__("time").time() < deadline, t.log()[-3000:]
        __import__("time").sleep(0.05)
    for sub in ("new", "cur", "tmp"):
        assert os.path.isdir(os.path.join(junk, sub))
    name = os.listdir(os.path.join(junk, "new"))[0]
    with open(os.path.join(junk, "new", name), "rb") as f:
        assert b"dmarc=fail header.from=quar.test" in f.read()
    assert t.messages("alice@example.test") == []   # nothing in INBOX


def test_dmarc_quarantine_two_recipients_both_junk(make_tern, dns):
    """Two recipients: the first copy is streamed into the inbox's tmp/
    before the verdict, the second made from the queue file; both go to
    Junk."""
    t = mx(make_tern, dns)
    c = smtplib.SMTP("127.0.0.1", t.port(), local_hostname="client.test", timeout=30)
    c.sendmail("x@quar.test", ["alice@example.test", "bob@example.test"], plain("x@quar.test"))
    c.quit()
    for who in ("alice@example.test", "bob@example.test"):
        t.wait_log(f'to="{who}" relay=local status=sent')
        assert len(os.listdir(os.path.join(t.maildir(who), ".Junk", "new"))) == 1
        assert t.messages(who) == []


def test_dmarc_pass_by_spf(make_tern, dns):
    t = mx(make_tern, dns)
    code, _ = send(t, "x@aligned.test", plain("x@aligned.test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "spf=pass" in ar[0] and "dmarc=pass header.from=aligned.test" in ar[0], ar


def test_dmarc_off_accepts_reject_policy(make_tern, dns):
    t = mx(make_tern, dns, checks={"dmarc": "off"})
    code, _ = send(t, "x@rej.test", plain("x@rej.test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "dmarc=" not in ar[0] and "spf=fail" in ar[0], ar


def test_forged_ar_removed_other_kept(make_tern, dns):
    t = mx(make_tern, dns)
    forged = (b"Authentication-Results: mx.test; spf=pass smtp.mailfrom=x@spfpass.test;\r\n"
              b"\tdkim=pass header.d=bank.test\r\n"
              b"Authentication-Results: MX.TEST (comment); dmarc=pass\r\n"
              b"Authentication-Results: other.example; spf=pass\r\n")
    code, _ = send(t, "x@spffail.test", forged + plain("x@spffail.test"))
    assert code == 250
    m = t.wait_messages("alice@example.test", 1)[0]
    ar = ar_fields(m)
    assert len([a for a in ar if a.lower().startswith("authentication-results: mx.test")]) == 1, ar
    assert "Authentication-Results: other.example; spf=pass" in ar
    assert ar[0].startswith("Authentication-Results: mx.test;") and "spf=fail" in ar[0], ar
    assert b"bank.test" not in m


def test_authserv_id_config(make_tern, dns):
    t = mx(make_tern, dns, checks={"authserv_id": "auth.example"})
    code, _ = send(t, "x@spfpass.test", plain("x@spfpass.test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert len(ar) == 1 and ar[0].startswith("Authentication-Results: auth.example;"), ar


def test_dns_not_answering_gives_temperror(make_tern):
    import socket
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # reads nothing, answers nothing
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        t = mx(make_tern, port, dns={"timeout": "2s"})
        code, _ = send(t, "x@rej.test", plain("x@rej.test"))
        assert code == 250   # never a 5xx for DNS trouble
        ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
        assert "spf=temperror" in ar[0] and "dmarc=temperror" in ar[0], ar
    finally:
        silent.close()


# Relay to a loopback MX: the receiver of test_outbound, 8BITMIME or not.
from test_outbound import dsns, net, status_fields, wait_for  # noqa: E402,F401




EIGHT_BIT = ("From: alice@example.test\r\nTo: bob@far.test\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n\r\ncaf\u00e9\r\n").encode("utf-8")


def test_signed_relay_to_8bitmime_mx_verifies(net):
    net.dns("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.141")
    r = net.receiver("127.0.0.141")
    t = net.tern()
    record = keygen(t)
    with t.smtp() as c:   # loopback is a trusted network: signed
        c.sendmail("alice@example.test", ["bob@far.test"], EIGHT_BIT)
    wait_for(lambda: len(r.messages) == 1, t=t)
    data = r.messages[0]["data"]
    assert b"caf\xc3\xa9" in data and b"DKIM-Signature:" in data
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)


def test_signed_8bit_downgraded_for_7bit_peer_verifies(net):
    """A hop without 8BITMIME gets the quoted-printable form (RFC 6152 3)
    with the signatures tern made over that form at submission (RFC 6376
    5.3): dkimpy verifies both Ed25519 and RSA.  (It used to be refused
    with 5.6.3.)"""
    net.dns("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.142")
    r = net.receiver("127.0.0.142", ext=("PIPELINING",))
    t = net.tern()
    records = {"s1._domainkey.example.test": keygen(t),
               "s2._domainkey.example.test": keygen(t, selector="s2", algorithm="ed25519")}
    body = "caf\u00e9 = cr\u00e8me, a long line " + "x" * 90 + "\r\n"
    msg = EIGHT_BIT.replace("caf\u00e9\r\n".encode(), body.encode("utf-8"))
    with t.smtp() as c:   # declared 8-bit (RFC 6152 2)
        c.sendmail("alice@example.test", ["bob@far.test"], msg, mail_options=["BODY=8BITMIME"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    data = r.messages[0]["data"]
    assert max(data) < 0x80, data                       # 7-bit on the wire
    assert b"Content-Transfer-Encoding: quoted-printable" in data
    assert b"caf=C3=A9 =3D cr=C3=A8me" in data
    assert data.count(b"DKIM-Signature:") == 2          # the 7-bit form's only
    assert dkimpy_verify_all(data, records)
    with pytest.raises(dkim.ValidationError):   # and it can fail
        dkimpy_verify_all(data.replace(b"cr=C3=A8me", b"cr=C3=A9me"), records)
    # the copy a local recipient gets stays 8-bit, signed as such
    t.wait_log("event=dkim_signed")


def test_signed_8bit_downgrade_after_restart_local_copy_8bit(net):
    """The 7-bit form's signatures are in the queue file: a message
    deferred at such a hop and sent after a restart still verifies; the
    local recipient's copy is the 8-bit form with its own signature."""
    net.dns("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.145")
    r = net.receiver("127.0.0.145", ext=("PIPELINING",), rcpt={"bob@far.test": "451 4.7.1 later"})
    t = net.tern()
    record = keygen(t)
    declared = EIGHT_BIT.replace(b"\r\n\r\n", b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", 1)
    with t.smtp() as c:   # declared by its Content-Transfer-Encoding
        c.sendmail("alice@example.test", ["bob@far.test", "alice@example.test"], declared)
    t.wait_log("status=deferred")
    local = t.wait_messages("alice@example.test", 1)[0]
    assert b"caf\xc3\xa9" in local and local.count(b"DKIM-Signature:") == 1
    assert dkim.verify(local.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
                       dnsfunc=lambda name, timeout=5: record)
    t.restart()
    r.rcpt = {}
    wait_for(lambda: len(r.messages) == 1, timeout=30, t=t)
    data = r.messages[0]["data"]
    assert max(data) < 0x80 and b"caf=C3=A9" in data and data.count(b"DKIM-Signature:") == 1
    assert data.count(b"Content-Transfer-Encoding:") == 1
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)


def test_signed_undeclared_8bit_refused_for_7bit_peer(net):
    """8-bit octets without BODY=8BITMIME or a Content-Transfer-Encoding
    saying so get no 7-bit form's signatures (7-bit mail does not pay for
    them): such a hop gets nothing and the sender 5.6.3, as before."""
    net.dns("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.146")
    r = net.receiver("127.0.0.146", ext=("PIPELINING",))
    t = net.tern()
    keygen(t)
    with t.smtp() as c:
        c.sendmail("alice@example.test", ["bob@far.test"], EIGHT_BIT)
    (d,) = dsns(t)
    assert status_fields(d)[0]["Status"] == "5.6.3"
    assert r.messages == []
    t.wait_log("would break its DKIM signature")


def test_signed_8bit_multipart_still_refused_for_7bit_peer(net):
    """What mime8 cannot convert (multipart) is not converted for anyone:
    5.6.3, as for unsigned mail, rather than a broken signature."""
    net.dns("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.143")
    r = net.receiver("127.0.0.143", ext=("PIPELINING",))
    t = net.tern()
    keygen(t)
    msg = ("From: alice@example.test\r\nTo: bob@far.test\r\nSubject: mp\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "\r\ncaf\u00e9\r\n--b--\r\n").encode("utf-8")
    with t.smtp() as c:
        c.sendmail("alice@example.test", ["bob@far.test"], msg, mail_options=["BODY=8BITMIME"])
    (d,) = dsns(t)
    assert status_fields(d)[0]["Status"] == "5.6.3"
    assert r.messages == []
    t.wait_log("would break its DKIM signature")


def test_signed_7bit_relay_has_no_second_form(net):
    """7-bit mail is sent as it is, to any hop: one signature set, and the
    queue file has no 7-bit form's signatures."""
    net.dns("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.144")
    r = net.receiver("127.0.0.144", ext=("PIPELINING",))
    t = net.tern()
    record = keygen(t)
    with t.smtp() as c:
        c.sendmail("alice@example.test", ["bob@far.test"], EIGHT_BIT.replace("caf\u00e9".encode(), b"cafe"))
    wait_for(lambda: len(r.messages) == 1, t=t)
    data = r.messages[0]["data"]
    assert data.count(b"DKIM-Signature:") == 1 and b"quoted-printable" not in data
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)


# ---- signing keys are loaded once: at start, on SIGHUP, when they change


def submit(t, frm="alice@example.test", rcpt="bob@example.test", subject="keys"):
    """One message over 587 (STARTTLS + AUTH); the stored copy."""
    before = len(t.messages(rcpt))
    d = submission_data(t, frm, rcpt)
    r = d.cmd(f"From: <{frm}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\r\nkeys body\r\n.")
    assert r.startswith("250"), r
    d.close()
    return t.wait_messages(rcpt, before + 1)[before]


def signatures(m):
    head = m.split(b"\n\n", 1)[0]
    return re.findall(rb"^DKIM-Signature:.*?(?=\n(?![ \t]))", head, re.S | re.M)


def dkimpy_verify_all(m, records):
    crlf = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    n = len(signatures(m))
    d = dkim.DKIM(crlf)
    return n > 0 and all(d.verify(idx=i, dnsfunc=lambda name, timeout=5: records[name.decode().rstrip(".")])
                         for i in range(n))


def test_keygen_key_used_after_restart_and_when_added(make_tern):
    t = make_tern(services=("smtp", "submission"), config={"relay": {"trusted_networks": UNTRUSTED}})
    t.wait_log("event=dkim_keys_loaded reason=start keys=0")
    rec1 = keygen(t, selector="r1", wait=False)
    t.restart()
    t.wait_log("event=dkim_keys_loaded reason=start keys=1")
    m = submit(t)
    assert len(signatures(m)) == 1 and b"s=r1" in signatures(m)[0], m
    records = {"r1._domainkey.example.test": rec1}
    assert dkimpy_verify_all(m, records)
    # a second key (Ed25519) made while tern runs: picked up by the watch
    records["e1._domainkey.example.test"] = keygen(t, selector="e1", algorithm="ed25519")
    t.wait_log("event=dkim_keys_loaded reason=changed keys=2")
    m = submit(t, subject="two")
    sigs = signatures(m)
    assert len(sigs) == 2 and b"a=ed25519-sha256" in b"".join(sigs), m
    assert dkimpy_verify_all(m, records)


def test_sighup_reloads_keys(make_tern, tmp_path):
    """A [dkim] keys file outside the state directory, replaced while tern
    runs; SIGHUP loads it."""
    pem = tmp_path / "cfg.pem"
    pem.write_bytes(subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True,
                                   check=True).stdout)
    t = make_tern(services=("smtp", "submission"), config={"relay": {"trusted_networks": UNTRUSTED},
                                                          "dkim": {"keys": f"example.test:cfg:{pem}"}})
    t.wait_log("event=dkim_keys_loaded reason=start keys=1")
    t.proc.send_signal(__import__("signal").SIGHUP)
    t.wait_log("event=dkim_keys_loaded reason=sighup keys=1")
    m = submit(t)
    assert len(signatures(m)) == 1 and b"s=cfg" in signatures(m)[0]


def test_keys_not_read_per_message(make_tern):
    """The key file is garbled behind tern's back (same inode, size and
    mtime, so the watch sees no change): messages are still signed with
    the key loaded at start, which a per-message read could not do."""
    t = make_tern(services=("smtp", "submission"), config={"relay": {"trusted_networks": UNTRUSTED}})
    rec = keygen(t, selector="k1")
    path = os.path.join(t.state, "dkim", "k1._domainkey.example.test.pem")
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(b"X" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    for i in range(2):
        m = submit(t, subject=f"n{i}")
        assert dkimpy_verify_all(m, {"k1._domainkey.example.test": rec}), m
    assert "event=dkim_key_error" not in t.log()
    # a SIGHUP does read it again, and says why it cannot be used
    t.proc.send_signal(__import__("signal").SIGHUP)
    t.wait_log("event=dkim_keys_loaded reason=sighup keys=0")
    assert "event=dkim_key_error level=error path=" in t.log()


def test_client_gone_while_signing(make_tern):
    """Signatures are made on a worker thread: a client that drops the
    connection right after its final dot leaves a job in flight whose
    stage is gone; nothing breaks (the sanitizer build checks the
    memory), and the server signs the next message as before."""
    t = make_tern(services=("smtp", "submission"), config={"relay": {"trusted_networks": UNTRUSTED}})
    rec = keygen(t, selector="g1")
    for i in range(20):
        d = submission_data(t)
        d.send(f"From: <alice@example.test>\r\nSubject: gone {i}\r\n\r\nbye\r\n.\r\n")
        d.close()
    t.wait_log("event=disconnect", n=20)
    m = submit(t, subject="after")
    assert dkimpy_verify_all(m, {"g1._domainkey.example.test": rec})

"""Sender authentication end to end, against dkimpy (python3-dkim) on both
sides and records from a private dnsmasq: Ed25519 signatures arriving on
the MX, DMARC pct= (RFC 7489 6.6.4), several From: addresses (6.6.1),
[checks] dkim = off with DMARC on, DNS failures (temperror, or 451 with
[checks] dns_tempfail), forged Authentication-Results in the RFC 8601
forms, and RSA + Ed25519 signatures on relayed mail verified by dkimpy at
a loopback MX."""
import base64
import os
import socket
import subprocess

import dkim
import pytest

from conftest import DNSMASQ, Dnsmasq, wait_for
from test_msgauth import UNTRUSTED, ar_fields, keygen, mx, plain, rsa_key, send, txt_arg
from test_outbound import net  # noqa: F401


def ed25519_key():
    """(dkimpy's private key: the base64 seed, the DNS record)."""
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-outform", "DER"], input=pem, capture_output=True, check=True).stdout
    pub = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem, capture_output=True,
                         check=True).stdout
    return base64.b64encode(der[-32:]), "v=DKIM1; k=ed25519; p=" + base64.b64encode(pub[-32:]).decode()


@pytest.fixture(scope="module")
def keys():
    return {"ed": ed25519_key(), "rsa": rsa_key(None)}


@pytest.fixture
def dns(keys, silent_dns):
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq is not installed")
    d = Dnsmasq([
        "--local=/test/",
        # SPF of spfdown.dm.test goes to a server that never answers
        f"--server=/spfdown.dm.test/127.0.0.1#{silent_dns}",
        # and the DMARC policy of slow.test
        f"--server=/_dmarc.slow.test/127.0.0.1#{silent_dns}",
        txt_arg("ed._domainkey.ed.test", keys["ed"][1]),
        txt_arg("ed.test", "v=spf1 -all"),
        txt_arg("_dmarc.ed.test", "v=DMARC1; p=reject"),
        txt_arg("rsa._domainkey.dk.test", keys["rsa"][1]),
        txt_arg("dk.test", "v=spf1 -all"),
        txt_arg("_dmarc.dk.test", "v=DMARC1; p=reject"),
        txt_arg("ed._domainkey.other.test", keys["ed"][1]),
        txt_arg("pct0.test", "v=spf1 -all"),
        txt_arg("_dmarc.pct0.test", "v=DMARC1; p=reject; pct=0"),
        txt_arg("pct100.test", "v=spf1 -all"),
        txt_arg("_dmarc.pct100.test", "v=DMARC1; p=reject; pct=100"),
        txt_arg("rej.test", "v=spf1 -all"),
        txt_arg("_dmarc.rej.test", "v=DMARC1; p=reject"),
        txt_arg("pnone.test", "v=spf1 -all"),
        txt_arg("_dmarc.pnone.test", "v=DMARC1; p=none"),
        txt_arg("aligned.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt_arg("_dmarc.aligned.test", "v=DMARC1; p=reject"),
        txt_arg("_dmarc.dm.test", "v=DMARC1; p=reject"),
    ])
    yield d.port
    d.stop()


MSG = (b"From: Someone <someone@%s>\r\nTo: alice@example.test\r\nSubject: e2e\r\n"
       b"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <e2e@%s>\r\n\r\nThe body.\r\n")


def ed_signed(keys, domain=b"ed.test", msg=None):
    msg = msg or MSG % (domain, domain)
    return dkim.sign(msg, b"ed", domain, keys["ed"][0], signature_algorithm=b"ed25519-sha256",
                     include_headers=[b"from", b"to", b"subject", b"date"]) + msg


def junk(t, addr="alice@example.test"):
    d = os.path.join(t.maildir(addr), ".Junk", "new")
    return os.listdir(d) if os.path.isdir(d) else []


# ---- Ed25519 (RFC 8463) arriving on the MX


def test_ed25519_signature_verified_on_the_mx(make_tern, dns, keys):
    t = mx(make_tern, dns)
    code, _ = send(t, "someone@ed.test", ed_signed(keys))
    assert code == 250   # SPF fails; the aligned Ed25519 signature passes DMARC
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert len(ar) == 1
    assert "dkim=pass header.d=ed.test header.s=ed" in ar[0], ar
    assert "spf=fail" in ar[0] and "dmarc=pass header.from=ed.test" in ar[0], ar
    # the same signature over an altered body: fail, and p=reject refuses
    code, reply = send(t, "someone@ed.test", ed_signed(keys).replace(b"The body.", b"The b0dy."))
    assert code == 550 and reply.startswith(b"5.7.1"), reply
    t.wait_log("dkim=fail dmarc=fail action=reject")


# ---- DMARC pct= (RFC 7489 6.6.4)


def test_dmarc_pct0_reject_is_quarantine(make_tern, dns):
    t = mx(make_tern, dns)
    for i in range(3):   # never sampled: every one is quarantined, none refused
        code, _ = send(t, "x@pct0.test", plain("x@pct0.test", subject=f"p{i}"))
        assert code == 250
    t.wait_log("dmarc=fail action=quarantine", n=3)
    wait_for(lambda: len(junk(t)) == 3, t=t)
    assert t.messages("alice@example.test") == []
    assert "action=reject" not in t.log()


def test_dmarc_pct100_rejects(make_tern, dns):
    t = mx(make_tern, dns)
    for i in range(3):
        code, reply = send(t, "x@pct100.test", plain("x@pct100.test", subject=f"p{i}"))
        assert code == 550 and reply.startswith(b"5.7.1"), reply
    t.wait_log("dmarc=fail action=reject", n=3)


# ---- several From: addresses (RFC 7489 6.6.1)


def from_two(a, b):
    return (f"From: <{a}>, <{b}>\r\nSender: <{a}>\r\nTo: <alice@example.test>\r\nSubject: two\r\n"
            f"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <two@client.test>\r\n\r\nTwo authors.\r\n").encode()


def test_two_from_domains_the_failing_reject_decides(make_tern, dns):
    """aligned.test passes by SPF, rej.test fails under p=reject: refused."""
    t = mx(make_tern, dns)
    code, reply = send(t, "x@aligned.test", from_two("a@aligned.test", "b@rej.test"))
    assert code == 550 and b"rej.test" in reply, reply
    t.wait_log("dmarc=fail action=reject")


def test_two_from_domains_p_none_is_delivered_and_marked(make_tern, dns):
    t = mx(make_tern, dns)
    code, _ = send(t, "x@aligned.test", from_two("a@aligned.test", "b@pnone.test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "dmarc=fail header.from=pnone.test" in ar[0], ar


def test_two_from_same_domain_passes(make_tern, dns):
    t = mx(make_tern, dns)
    code, _ = send(t, "x@aligned.test", from_two("a@aligned.test", "b@Aligned.Test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "dmarc=pass header.from=aligned.test" in ar[0], ar


# ---- [checks] dkim = off with DMARC on


def two_signatures(keys):
    """d=dk.test (RSA, aligned with From: dk.test) and d=other.test
    (Ed25519, not aligned)."""
    msg = MSG % (b"dk.test", b"dk.test")
    s1 = dkim.sign(msg, b"rsa", b"dk.test", keys["rsa"][0], include_headers=[b"from", b"subject"])
    s2 = dkim.sign(s1 + msg, b"ed", b"other.test", keys["ed"][0], signature_algorithm=b"ed25519-sha256",
                   include_headers=[b"from", b"subject"])
    return s2 + s1 + msg


def test_dkim_off_dmarc_on_checks_only_aligned_signatures(make_tern, dns, keys):
    t = mx(make_tern, dns, checks={"dkim": "off"})
    code, _ = send(t, "x@dk.test", two_signatures(keys))
    assert code == 250   # SPF fails: only the aligned DKIM pass saves it from p=reject
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "dkim=pass header.d=dk.test header.s=rsa" in ar[0], ar
    assert "other.test" not in ar[0] and ar[0].count("dkim=") == 1, ar
    assert "dmarc=pass header.from=dk.test" in ar[0], ar
    t.wait_log("spf=fail dkim=pass dmarc=pass action=accept")
    # no signature at all: nothing for DKIM to say, DMARC fails
    code, _ = send(t, "x@dk.test", plain("x@dk.test"))
    assert code == 550
    t.wait_log("spf=fail dkim=off dmarc=fail action=reject")


def test_dkim_on_reports_every_signature(make_tern, dns, keys):
    """The control for the test above: with dkim on, both are reported."""
    t = mx(make_tern, dns)
    code, _ = send(t, "x@dk.test", two_signatures(keys))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "dkim=pass header.d=dk.test" in ar[0] and "dkim=pass header.d=other.test" in ar[0], ar


def test_dkim_off_dmarc_off_no_dkim_at_all(make_tern, dns, keys):
    t = mx(make_tern, dns, checks={"dkim": "off", "dmarc": "off"})
    code, _ = send(t, "x@dk.test", two_signatures(keys))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "dkim=" not in ar[0] and "dmarc=" not in ar[0] and "spf=fail" in ar[0], ar
    t.wait_log("dkim=off dmarc=none action=accept")


# ---- DNS failures: temperror, or 451 when asked; never a 5xx


def closed_port():
    """A UDP port with no server: queries get ICMP port unreachable."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("server", ["silent", "closed"])
def test_dns_failure_temperror_by_default(make_tern, silent_dns, server):
    port = silent_dns if server == "silent" else closed_port()
    t = mx(make_tern, port, dns={"timeout": "2s"})
    code, _ = send(t, "x@rej.test", plain("x@rej.test"))
    assert code == 250
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "spf=temperror" in ar[0] and "dmarc=temperror" in ar[0], ar


@pytest.mark.parametrize("server", ["silent", "closed"])
def test_dns_failure_tempfail_when_asked(make_tern, silent_dns, server):
    port = silent_dns if server == "silent" else closed_port()
    t = mx(make_tern, port, dns={"timeout": "2s"}, checks={"dns_tempfail": "yes"})
    code, reply = send(t, "x@rej.test", plain("x@rej.test"))
    assert code == 451 and reply.startswith(b"4.4.3"), reply
    t.wait_log("spf=temperror dkim=none dmarc=temperror action=tempfail")
    t.wait_sessions_closed()
    assert t.messages("alice@example.test") == []


def test_spf_timeout_under_p_reject_is_not_a_reject(make_tern, dns):
    """The DMARC record answers (p=reject) but the aligned SPF domain's
    lookup times out: DMARC is temperror, the mail is accepted - a DNS
    failure is never a 5xx."""
    t = mx(make_tern, dns, dns={"timeout": "2s"})
    code, reply = send(t, "x@spfdown.dm.test", plain("x@dm.test"))
    assert code == 250, reply
    ar = ar_fields(t.wait_messages("alice@example.test", 1)[0])
    assert "spf=temperror" in ar[0] and "dmarc=temperror header.from=dm.test" in ar[0], ar


def test_spf_timeout_with_dns_tempfail_is_451(make_tern, dns):
    t = mx(make_tern, dns, dns={"timeout": "2s"}, checks={"dns_tempfail": "yes"})
    code, reply = send(t, "x@spfdown.dm.test", plain("x@dm.test"))
    assert code == 451, reply
    # a DMARC pass is a pass even when something else timed out
    code, _ = send(t, "x@aligned.test", plain("x@aligned.test"))
    assert code == 250


def test_definite_reject_is_not_turned_into_451(make_tern, dns):
    """Two From: domains: rej.test fails for certain under p=reject, the
    policy of slow.test does not answer.  dns_tempfail defers only what
    DNS left open: this one is refused."""
    t = mx(make_tern, dns, dns={"timeout": "2s"}, checks={"dns_tempfail": "yes"})
    code, reply = send(t, "x@rej.test", from_two("a@rej.test", "b@slow.test"))
    assert code == 550 and b"rej.test" in reply, reply
    t.wait_log("dmarc=fail action=reject")


# ---- forged Authentication-Results in RFC 8601's forms


def test_forged_ar_in_every_form_removed(make_tern, dns):
    t = mx(make_tern, dns)
    forged = (b'Authentication-Results: "mx.test"; dkim=pass header.d=quoted.test\r\n'
              b"Authentication-Results: (a comment) mx.test 1; dkim=pass header.d=comment.test\r\n"
              b"Authentication-Results:\r\n\tmx.test\r\n\t(folded); dkim=pass header.d=folded.test\r\n"
              b"Authentication-Results: mx.test/x; dkim=pass header.d=malformed.test\r\n"
              b"Authentication-Results: (" + (b"x" * 70 + b"\r\n\t") * 21
              + b") mx.test; dkim=pass header.d=hidden.test\r\n"
              b"Authentication-Results: other.example 1 (theirs); spf=pass\r\n")
    code, _ = send(t, "x@aligned.test", forged + plain("x@aligned.test"))
    assert code == 250
    m = t.wait_messages("alice@example.test", 1)[0]
    for d in (b"quoted", b"comment", b"folded", b"malformed", b"hidden"):
        assert d + b".test" not in m, m
    ar = ar_fields(m)
    assert "Authentication-Results: other.example 1 (theirs); spf=pass" in ar, ar
    assert len(ar) == 2 and ar[0].startswith("Authentication-Results: mx.test;"), ar


# ---- RSA + Ed25519 on relayed mail, verified by dkimpy at the next hop


def test_rsa_and_ed25519_signatures_verified_after_relay(net):
    net.dns("--mx-host=far.test,mx.far.test,10", "--host-record=mx.far.test,127.0.0.143")
    r = net.receiver("127.0.0.143")
    t = net.tern()
    records = {"r1._domainkey.example.test": keygen(t, selector="r1"),
               "e1._domainkey.example.test": keygen(t, selector="e1", algorithm="ed25519")}
    t.wait_log("event=dkim_keys_loaded reason=changed keys=2")
    msg = (b"From: Alice <alice@example.test>\r\nTo: bob@far.test\r\nSubject: two keys\r\n"
           b"Cc: carol@far.test\r\n\r\nSigned twice.\r\n")
    with t.smtp() as c:   # loopback is a trusted network: signed
        c.sendmail("alice@example.test", ["bob@far.test"], msg)
    wait_for(lambda: len(r.messages) == 1, t=t)
    data = r.messages[0]["data"]
    assert data.count(b"DKIM-Signature:") == 2, data
    assert b"a=rsa-sha256" in data and b"a=ed25519-sha256" in data
    dnsfunc = lambda name, timeout=5: records[name.decode().rstrip(".")]  # noqa: E731
    assert dkim.DKIM(data).verify(idx=0, dnsfunc=dnsfunc)
    assert dkim.DKIM(data).verify(idx=1, dnsfunc=dnsfunc)
    # either one broken by a change in transit: both fail
    bad = data.replace(b"Signed twice.", b"Signed thrice.")
    for idx in (0, 1):
        try:
            ok = dkim.DKIM(bad).verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.ValidationError:
            ok = False
        assert not ok

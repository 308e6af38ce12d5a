"""tern dkim keygen / sign / verify against independent tools: the printed
record loads in a zone (named-checkzone), dkimpy (python3-dkim) verifies what
tern signs, and tern verifies what dkimpy signs - rsa and ed25519, simple
and relaxed - and refuses what was altered after signing."""
import base64
import os
import re
import stat
import subprocess

import dkim
import pytest

from conftest import TERN_BIN

DOMAIN = "example.test"

MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: Bob <bob@example.org>\r\n"
           b"Subject: Dinner  at\r\n\teight\r\n"
           b"Date: Fri, 04 Dec 2026 18:00:00 +0000\r\n"
           b"Message-ID: <1@example.test>\r\n"
           b"\r\n"
           b"Hi Bob,  \r\n"
           b"\r\n"
           b"see you there.\r\n"
           b"\r\n\r\n")


def run(args, stdin=b"", check=True):
    p = subprocess.run([TERN_BIN] + args, input=stdin, capture_output=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


@pytest.fixture
def conf(tmp_path):
    state = tmp_path / "state"
    path = tmp_path / "tern.conf"
    path.write_text(f"[server]\nhostname = mx.example.test\nstate_dir = {state}\n")
    return str(path), state


def keygen(conf, selector, algorithm):
    path, state = conf
    p = run(["dkim", "keygen", DOMAIN, "--selector", selector, "--algorithm", algorithm, "-c", path])
    line = p.stdout.decode()
    key = state / "dkim" / f"{selector}._domainkey.{DOMAIN}.pem"
    return line, str(key)


def record_of(line):
    """The TXT record's text: the quoted strings joined."""
    return "".join(re.findall(r'"([^"]*)"', line))


def dnsfunc_for(records):
    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip(".")).encode() if name.decode().rstrip(".") in records else None
    return dnsfunc


def tern_verify(msg, records):
    args = ["dkim", "verify"]
    for name, rec in records.items():
        args += ["--record", f"{name}={rec}"]
    p = run(args, stdin=msg, check=False)
    return p.stdout.decode().splitlines()


@pytest.mark.parametrize("algorithm,k", [("rsa", "rsa"), ("ed25519", "ed25519")])
def test_keygen_writes_private_key_and_prints_one_line(conf, algorithm, k):
    line, key = keygen(conf, "s1", algorithm)
    assert line.endswith("\n") and line.count("\n") == 1
    assert line.startswith(f's1._domainkey.{DOMAIN}. IN TXT "v=DKIM1; k={k}; p=')
    strings = re.findall(r'"([^"]*)"', line)
    assert all(len(s) <= 255 for s in strings)
    if algorithm == "rsa":
        assert len(strings) >= 2       # 2048-bit key: longer than one string
    st = os.stat(key)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode) == 0o700
    assert b"PRIVATE KEY" in open(key, "rb").read()
    assert not [f for f in os.listdir(os.path.dirname(key)) if ".tmp" in f]
    if algorithm == "rsa":
        out = subprocess.run(["openssl", "pkey", "-in", key, "-text", "-noout"], capture_output=True).stdout
        assert b"2048 bit" in out


def test_keygen_never_replaces_a_key(conf):
    line, key = keygen(conf, "s1", "ed25519")
    before = open(key, "rb").read()
    p = run(["dkim", "keygen", DOMAIN, "--selector", "s1", "-c", conf[0]], check=False)
    assert p.returncode != 0 and b"exists already" in p.stderr
    assert open(key, "rb").read() == before


@pytest.mark.parametrize("bad", [["keygen"], ["keygen", "../evil"], ["keygen", DOMAIN, "--algorithm", "dsa"],
                                 ["keygen", DOMAIN, "--selector", "a/b"]])
def test_keygen_refuses_bad_arguments(conf, bad):
    p = run(["dkim"] + bad + ["-c", conf[0]], check=False)
    assert p.returncode != 0
    assert not os.path.exists(conf[1] / "dkim") or not os.listdir(conf[1] / "dkim")


def test_named_checkzone_accepts_the_lines(conf, tmp_path):
    rsa, _ = keygen(conf, "r1", "rsa")
    ed, _ = keygen(conf, "e1", "ed25519")
    zone = tmp_path / "zone"
    zone.write_text(f"$TTL 300\n{DOMAIN}. IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 300\n"
                    f"{DOMAIN}. IN NS ns.{DOMAIN}.\nns.{DOMAIN}. IN A 127.0.0.1\n{rsa}{ed}")
    p = subprocess.run(["named-checkzone", DOMAIN, str(zone)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OK" in p.stdout


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
@pytest.mark.parametrize("linesep", [b"\r\n", b"\n"])
def test_dkimpy_verifies_what_tern_signs(conf, algorithm, linesep):
    line, key = keygen(conf, "sel", algorithm)
    records = {f"sel._domainkey.{DOMAIN}": record_of(line)}
    msg = MESSAGE.replace(b"\r\n", linesep)
    signed = run(["dkim", "sign", "--key", key, "--domain", DOMAIN, "--selector", "sel"], stdin=msg).stdout
    assert signed.endswith(msg) and signed.startswith(b"DKIM-Signature: v=1; a=")
    d = dkim.DKIM(signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert d.verify(dnsfunc=dnsfunc_for(records))
    assert tern_verify(signed, records) == [f"dkim=pass header.d={DOMAIN} header.s=sel"]
    # tampering after signing breaks it for both
    bad = signed.replace(b"see you there", b"see you later")
    assert not dkim.verify(bad.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), dnsfunc=dnsfunc_for(records))


def dkimpy_private_key(key_path, algorithm):
    pem = open(key_path, "rb").read()
    if algorithm == "rsa":
        return pem
    # dkimpy takes the raw Ed25519 seed, base64: the last 32 octets of the
    # PKCS#8 DER.
    der = base64.b64decode(b"".join(l for l in pem.splitlines() if not l.startswith(b"-----")))
    return base64.b64encode(der[-32:])


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
@pytest.mark.parametrize("canon", [(b"simple", b"simple"), (b"relaxed", b"relaxed"), (b"relaxed", b"simple"),
                                   (b"simple", b"relaxed")])
def test_tern_verifies_what_dkimpy_signs(conf, algorithm, canon):
    line, key = keygen(conf, "py", algorithm)
    records = {f"py._domainkey.{DOMAIN}": record_of(line)}
    sig = dkim.sign(MESSAGE, b"py", DOMAIN.encode(), dkimpy_private_key(key, algorithm), canonicalize=canon,
                    signature_algorithm=b"ed25519-sha256" if algorithm == "ed25519" else b"rsa-sha256")
    signed = sig + MESSAGE
    ok = f"dkim=pass header.d={DOMAIN} header.s=py"
    assert tern_verify(signed, records) == [ok]
    # the message path carries LF line ends: same result
    assert tern_verify(signed.replace(b"\r\n", b"\n"), records) == [ok]

    body = signed.replace(b"see you there", b"see you never")
    assert tern_verify(body, records) == [f"dkim=fail header.d={DOMAIN} header.s=py (body hash did not verify)"]
    subj = signed.replace(b"Subject: Dinner", b"Subject: Lunch")
    assert tern_verify(subj, records) == [f"dkim=fail header.d={DOMAIN} header.s=py (signature did not verify)"]
    added = b"From: mallory@example.net\r\n" + signed
    assert tern_verify(added, records)[0].startswith("dkim=fail")
    # relaxed body forgives whitespace changes, simple does not
    ws = signed.replace(b"Hi Bob,  ", b"Hi   Bob,")
    want = "pass" if canon[1] == b"relaxed" else "fail"
    assert tern_verify(ws, records)[0].startswith(f"dkim={want}")


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_length_tag_abuse_is_not_a_pass(conf, algorithm):
    line, key = keygen(conf, "len", algorithm)
    records = {f"len._domainkey.{DOMAIN}": record_of(line)}
    sig = dkim.sign(MESSAGE, b"len", DOMAIN.encode(), dkimpy_private_key(key, algorithm), length=True,
                    signature_algorithm=b"ed25519-sha256" if algorithm == "ed25519" else b"rsa-sha256")
    assert b"l=" in sig
    assert tern_verify(sig + MESSAGE, records) == [f"dkim=pass header.d={DOMAIN} header.s=len"]
    # text appended below the signed part: dkimpy still passes it, tern
    # does not (RFC 6376 8.2)
    abused = sig + MESSAGE + b"Click http://phish.example/ now\r\n"
    assert dkim.verify(abused, dnsfunc=dnsfunc_for(records))
    assert tern_verify(abused, records) == [
        f"dkim=policy header.d={DOMAIN} header.s=len (l= leaves part of the body unsigned)"]
    # a signed part changed is a fail all the same
    changed = sig + MESSAGE.replace(b"see you there", b"see you never") + b"more\r\n"
    assert tern_verify(changed, records)[0].startswith("dkim=fail")


def test_rsa_sha1_and_missing_keys(conf):
    line, key = keygen(conf, "old", "rsa")
    records = {f"old._domainkey.{DOMAIN}": record_of(line)}
    sig = dkim.sign(MESSAGE, b"old", DOMAIN.encode(), open(key, "rb").read(), signature_algorithm=b"rsa-sha1")
    assert tern_verify(sig + MESSAGE, records) == ["dkim=permerror (rsa-sha1 is not accepted (RFC 8301))"]
    sig = dkim.sign(MESSAGE, b"old", DOMAIN.encode(), open(key, "rb").read())
    assert tern_verify(sig + MESSAGE, {}) == [f"dkim=permerror header.d={DOMAIN} header.s=old (no key record)"]
    revoked = {f"old._domainkey.{DOMAIN}": "v=DKIM1; k=rsa; p="}
    assert tern_verify(sig + MESSAGE, revoked) == [f"dkim=permerror header.d={DOMAIN} header.s=old (key revoked)"]
    assert tern_verify(MESSAGE, records) == ["dkim=none"]


def test_signs_with_both_keys(conf):
    """Two signatures (RSA and Ed25519) on one message, both verified."""
    rsa, rkey = keygen(conf, "r", "rsa")
    ed, ekey = keygen(conf, "e", "ed25519")
    records = {f"r._domainkey.{DOMAIN}": record_of(rsa), f"e._domainkey.{DOMAIN}": record_of(ed)}
    once = run(["dkim", "sign", "--key", ekey, "--domain", DOMAIN, "--selector", "e"], stdin=MESSAGE).stdout
    twice = run(["dkim", "sign", "--key", rkey, "--domain", DOMAIN, "--selector", "r"], stdin=once).stdout
    assert tern_verify(twice, records) == [f"dkim=pass header.d={DOMAIN} header.s=r",
                                           f"dkim=pass header.d={DOMAIN} header.s=e"]
    assert dkim.DKIM(twice).verify(idx=0, dnsfunc=dnsfunc_for(records))
    assert dkim.DKIM(twice).verify(idx=1, dnsfunc=dnsfunc_for(records))

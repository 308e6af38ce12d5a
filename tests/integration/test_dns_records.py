"""`tern dns-records DOMAIN`: every record, in zone-file syntax that
named-checkzone accepts when pasted into a zone (here a minimal one with
SOA and NS), with the DKIM keys found under state_dir/dkim/, SRV records
for exactly the configured services, and an MTA-STS id that follows the
policy."""
import base64
import os
import re
import subprocess

SERVICES = ("smtp", "submission", "submissions", "pop3s", "https")


def records(t, domain="example.test"):
    r = t.cli("dns-records", domain)
    assert r.returncode == 0, r.stderr
    return r.stdout


def checkzone(tmp_path, text, origin="example.test"):
    zone = (f"$ORIGIN {origin}.\n$TTL 3600\n"
            f"@ IN SOA ns1.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n"
            f"@ IN NS ns1.{origin}.\nns1 IN A 192.0.2.1\n" + text)
    path = os.path.join(str(tmp_path), "zone")
    with open(path, "w") as f:
        f.write(zone)
    return subprocess.run(["named-checkzone", "-k", "fail", "-n", "fail", origin, path],
                          capture_output=True, text=True)


def rrs(text):
    """(name, type, data) of each record, parentheses joined."""
    text = re.sub(r"\(\s*(.*?)\s*\)", lambda m: " ".join(m.group(1).split()), text, flags=re.S)
    out = []
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        name, ttl, cls, typ, data = line.split(None, 4)
        assert cls == "IN" and ttl == "3600"
        out.append((name, typ, data.strip()))
    return out


def txt(data):
    return "".join(re.findall(r'"([^"]*)"', data))


def test_records_pass_named_checkzone(make_tern, tmp_path):
    t = make_tern(start=False, services=SERVICES, hostname="mx.example.test")
    dk = os.path.join(t.state, "dkim")
    os.makedirs(dk)
    rsa = os.path.join(dk, "s1._domainkey.example.test.pem")
    ed = os.path.join(dk, "s2._domainkey.example.test.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", ed], check=True, capture_output=True)
    # Another domain's key is not listed.
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    os.path.join(dk, "s3._domainkey.localhost.pem")], check=True, capture_output=True)
    out = records(t)
    r = checkzone(tmp_path, out)
    assert r.returncode == 0, r.stdout + r.stderr + out
    got = rrs(out)
    by = {}
    for name, typ, data in got:
        by.setdefault((name, typ), []).append(data)
    d = "example.test."
    assert by[(d, "MX")] == ["10 mx.example.test."]
    assert [txt(x) for x in by[(d, "TXT")]] == ["v=spf1 mx -all"]
    assert txt(by[("_dmarc." + d, "TXT")][0]) == "v=DMARC1; p=quarantine"
    assert re.fullmatch(r"v=STSv1; id=[0-9a-f]{32}", txt(by[("_mta-sts." + d, "TXT")][0]))
    assert txt(by[("_smtp._tls." + d, "TXT")][0]) == "v=TLSRPTv1; rua=mailto:postmaster@example.test"
    for label in ("mta-sts", "autoconfig", "autodiscover"):
        assert by[(f"{label}.{d}", "CNAME")] == ["mx.example.test."]
    srv = {n.split(".")[0]: v[0].split() for (n, typ), v in by.items() if typ == "SRV"}
    assert srv["_imaps"] == ["0", "0", "0", "."] and srv["_imap"] == ["0", "0", "0", "."]
    assert srv["_pop3"] == ["0", "0", "0", "."]
    assert srv["_pop3s"][2:] == [str(t.port("pop3s")), "mx.example.test."]
    assert srv["_submissions"][2:] == [str(t.port("submissions")), "mx.example.test."]
    assert srv["_submission"][2:] == [str(t.port("submission")), "mx.example.test."]
    assert srv["_autodiscover"][2:] == [str(t.port("https")), "mx.example.test."]

    # The DKIM records carry the keys' public halves.
    rsa_pub = subprocess.run(["openssl", "pkey", "-in", rsa, "-pubout", "-outform", "DER"],
                             capture_output=True, check=True).stdout
    ed_pub = subprocess.run(["openssl", "pkey", "-in", ed, "-pubout", "-outform", "DER"],
                            capture_output=True, check=True).stdout[-32:]
    assert txt(by[("s1._domainkey." + d, "TXT")][0]) == \
        "v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_pub).decode()
    assert txt(by[("s2._domainkey." + d, "TXT")][0]) == \
        "v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_pub).decode()
    assert "s3._domainkey" not in out


def test_no_dkim_key_says_what_to_run(make_tern, tmp_path):
    t = make_tern(start=False, services=("smtp",), hostname="mx.example.test")
    out = records(t)
    assert "; no DKIM key for example.test" in out and "tern dkim keygen example.test" in out
    assert "_domainkey" not in "".join(l for l in out.splitlines() if not l.startswith(";"))
    assert checkzone(tmp_path, out).returncode == 0
    assert "[https] listen is not set" in out


def test_mta_sts_id_follows_the_policy(make_tern):
    t = make_tern(start=False, services=("smtp",), hostname="mx.example.test")
    def sts_id():
        return re.search(r"id=([0-9a-f]+)", records(t)).group(1)
    a = sts_id()
    assert sts_id() == a
    t.sections["mta_sts"] = {"mode": "enforce"}
    t.write_config()
    b = sts_id()
    assert b != a
    t.sections["mta_sts"] = {"mode": "enforce", "mx": "mx2.example.test"}
    t.write_config()
    assert sts_id() not in (a, b)


def test_refuses_a_domain_that_is_not_local(make_tern):
    t = make_tern(start=False, services=("smtp",))
    r = t.cli("dns-records", "other.test")
    assert r.returncode == 1 and "not a local domain" in r.stderr
    r = t.cli("dns-records")
    assert r.returncode == 2 and "usage" in r.stderr


def test_key_from_dkim_keygen_is_listed(make_tern, tmp_path):
    t = make_tern(start=False, services=("smtp",), hostname="mx.example.test")
    r = t.cli("dkim", "keygen", "example.test", "--selector", "k1", "--algorithm", "ed25519")
    assert r.returncode == 0, r.stderr
    printed = txt(r.stdout)
    out = records(t)
    assert "no DKIM key" not in out
    got = {(n, typ): d for n, typ, d in rrs(out)}
    assert txt(got[("k1._domainkey.example.test.", "TXT")]) == printed
    assert checkzone(tmp_path, out).returncode == 0

"""tern's SPF evaluator and pyspf (python3-spf) over the same records, case
by case: both are given the same table of DNS records through a fake
resolver (pyspf's DNSLookup replaced; tern's state machine answered by the
unit test binary's --table mode), and must give the same result - and, for
a fail, the same explanation from the record's exp= (RFC 7208 6.2), with
the exp-only macros c, r and t expanded."""
import os
import subprocess

import pytest
import spf

from conftest import TERN_BIN

TEST_SPF = os.path.join(os.path.dirname(TERN_BIN), "tests", "test_spf")

RECORDS = [
    ("ex.test", "TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx -all"),
    ("ex.test", "TXT", "unrelated text"),
    ("ex.test", "A", "198.51.100.1"),
    ("ex.test", "MX", "mx1.ex.test"),
    ("ex.test", "MX", "mx2.ex.test"),
    ("mx1.ex.test", "A", "198.51.100.10"),
    ("mx2.ex.test", "A", "198.51.100.20"),
    ("mx2.ex.test", "AAAA", "2001:db9::20"),
    ("soft.test", "TXT", "v=spf1 ~all"),
    ("neutral.test", "TXT", "v=spf1 ?all"),
    ("empty.test", "TXT", "v=spf1"),
    ("nospf.test", "TXT", "hello"),
    ("two.test", "TXT", "v=spf1 -all"),
    ("two.test", "TXT", "v=spf1 +all"),
    ("inc.test", "TXT", "v=spf1 include:ex.test include:soft.test -all"),
    ("incnone.test", "TXT", "v=spf1 include:nospf.test -all"),
    ("red.test", "TXT", "v=spf1 redirect=ex.test"),
    ("redfirst.test", "TXT", "v=spf1 redirect=soft.test ip4:203.0.113.1"),
    ("rednone.test", "TXT", "v=spf1 redirect=nospf.test"),
    ("loop.test", "TXT", "v=spf1 include:loop.test -all"),
    ("redloop.test", "TXT", "v=spf1 redirect=redloop.test"),
    ("cidr.test", "TXT", "v=spf1 a:host.cidr.test/28 -all"),
    ("host.cidr.test", "A", "203.0.113.1"),
    ("cidr6.test", "TXT", "v=spf1 a:host6.cidr.test//48 -all"),
    ("host6.cidr.test", "AAAA", "2001:db8:1::1"),
    ("mxcidr.test", "TXT", "v=spf1 mx:ex.test/16 -all"),
    ("exists.test", "TXT", "v=spf1 exists:%{ir}.%{l}.x.exists.test -all"),
    ("1.113.0.203.alice.x.exists.test", "A", "127.0.0.2"),
    ("ptr.test", "TXT", "v=spf1 ptr -all"),
    ("1.113.0.203.in-addr.arpa", "PTR", "mail.ptr.test"),
    ("1.113.0.203.in-addr.arpa", "PTR", "evil.example"),
    ("mail.ptr.test", "A", "203.0.113.1"),
    ("evil.example", "A", "203.0.113.1"),
    ("ptrother.test", "TXT", "v=spf1 ptr:other.test -all"),
    ("temp.test", "TXT", "TEMPFAIL"),
    ("atemp.test", "TXT", "v=spf1 a:down.test -all"),
    ("down.test", "A", "TEMPFAIL"),
    ("bad.test", "TXT", "v=spf1 ip4:1.2.3 -all"),
    ("badmech.test", "TXT", "v=spf1 foo:bar -all"),
    ("unknownmod.test", "TXT", "v=spf1 foo=bar -all"),
    ("many.test", "TXT", "v=spf1 a:a1.test a:a2.test a:a3.test a:a4.test a:a5.test a:a6.test a:a7.test "
                         "a:a8.test a:a9.test a:a10.test a:a11.test -all"),
    ("ten.test", "TXT", "v=spf1 a:a1.test a:a2.test a:a3.test a:a4.test a:a5.test a:a6.test a:a7.test "
                        "a:a8.test a:a9.test ip4:203.0.113.1 -all"),
    ("voids.test", "TXT", "v=spf1 a:n1.test a:n2.test a:n3.test +all"),
    ("twovoids.test", "TXT", "v=spf1 a:n1.test a:n2.test +all"),
    ("mxbomb.test", "TXT", "v=spf1 mx -all"),
    ("helo.test", "TXT", "v=spf1 a:%{h} -all"),
    ("mail.helo.test", "A", "203.0.113.1"),
    ("mail.helo.test", "TXT", "v=spf1 a -all"),
    ("v6.test", "TXT", "v=spf1 ip6:2001:db8::/32 ip4:203.0.113.0/24 -all"),
    ("case.test", "TXT", "V=SPF1 IP4:203.0.113.1 -ALL"),
    ("macro.test", "TXT", "v=spf1 include:%{d2}.spf.test -all"),
    ("macro.test.spf.test", "TXT", "v=spf1 +all"),
    ("long.test", "TXT", "v=spf1 " + " ".join(f"ip4:10.0.{i}.0/24" for i in range(40)) + " ~all"),
    # exp= (6.2): the failing record's, a redirect target's, never an
    # included one's; no record, two records, a DNS error or a bad macro
    # in the text: no explanation
    ("expl.test", "TXT", "v=spf1 ip4:192.0.2.1 -all exp=why.%{d}"),
    ("why.expl.test", "TXT", "%{i} is not one of %{d}'s servers (%{l}, %{c}, %{r}, %{t}, %{d2r}, %{S})"),
    ("expinc.test", "TXT", "v=spf1 include:expl.test -all"),
    ("expred.test", "TXT", "v=spf1 redirect=expl.test exp=why.other.test"),
    ("why.other.test", "TXT", "from the redirecting record"),
    ("expnx.test", "TXT", "v=spf1 -all exp=nowhere.test"),
    ("exptwo.test", "TXT", "v=spf1 -all exp=two.why.test"),
    ("two.why.test", "TXT", "one"),
    ("two.why.test", "TXT", "two"),
    ("exptemp.test", "TXT", "v=spf1 -all exp=down.why.test"),
    ("down.why.test", "TXT", "TEMPFAIL"),
    ("expbad.test", "TXT", "v=spf1 -all exp=bad.why.test"),
    ("bad.why.test", "TXT", "%{q} is no macro"),
    ("expv6.test", "TXT", "v=spf1 -all exp=why6.test"),
    ("why6.test", "TXT", "%{c} and %{i} are not %{d}'s"),
] + [(f"a{i}.test", "A", "192.0.2.200") for i in range(1, 11)] + [("a11.test", "A", "203.0.113.1")] \
  + [("mxbomb.test", "MX", f"m{i}.test") for i in range(1, 12)]

CASES = [
    ("192.0.2.9", "a@ex.test"), ("2001:db8::1", "a@ex.test"), ("198.51.100.1", "a@ex.test"),
    ("198.51.100.20", "a@ex.test"), ("2001:db9::20", "a@ex.test"), ("203.0.113.1", "a@ex.test"),
    ("203.0.113.1", "a@soft.test"), ("203.0.113.1", "a@neutral.test"), ("203.0.113.1", "a@empty.test"),
    ("203.0.113.1", "a@nospf.test"), ("203.0.113.1", "a@nowhere.test"), ("203.0.113.1", "a@two.test"),
    ("192.0.2.9", "a@inc.test"), ("203.0.113.1", "a@inc.test"), ("203.0.113.1", "a@incnone.test"),
    ("192.0.2.9", "a@red.test"), ("203.0.113.1", "a@red.test"), ("203.0.113.1", "a@redfirst.test"),
    ("203.0.113.1", "a@rednone.test"), ("203.0.113.1", "a@loop.test"), ("203.0.113.1", "a@redloop.test"),
    ("203.0.113.14", "a@cidr.test"), ("203.0.113.17", "a@cidr.test"),
    ("2001:db8:1:ffff::1", "a@cidr6.test"), ("2001:db8:2::1", "a@cidr6.test"),
    ("198.51.7.7", "a@mxcidr.test"), ("198.52.0.1", "a@mxcidr.test"),
    ("203.0.113.1", "alice@exists.test"), ("203.0.113.1", "bob@exists.test"),
    ("203.0.113.1", "a@ptr.test"), ("203.0.113.2", "a@ptr.test"), ("203.0.113.1", "a@ptrother.test"),
    ("203.0.113.1", "a@temp.test"), ("203.0.113.1", "a@atemp.test"),
    ("203.0.113.1", "a@bad.test"), ("203.0.113.1", "a@badmech.test"), ("203.0.113.1", "a@unknownmod.test"),
    ("203.0.113.1", "a@many.test"), ("203.0.113.1", "a@ten.test"),
    ("203.0.113.1", "a@voids.test"), ("203.0.113.1", "a@twovoids.test"),
    ("203.0.113.1", "a@mxbomb.test"), ("203.0.113.1", "a@helo.test"),
    ("2001:db8::5", "a@v6.test"), ("2001:db9::5", "a@v6.test"), ("203.0.113.5", "a@v6.test"),
    ("203.0.113.1", "a@case.test"), ("203.0.113.1", "a@macro.test"),
    ("10.0.39.1", "a@long.test"), ("10.0.40.1", "a@long.test"),
    ("203.0.113.1", "postmaster@mail.helo.test"), ("203.0.113.9", "postmaster@mail.helo.test"),
    ("203.0.113.1", "alice@expl.test"), ("192.0.2.1", "alice@expl.test"), ("203.0.113.1", "a@expinc.test"),
    ("203.0.113.1", "bob@expred.test"), ("203.0.113.1", "a@expnx.test"), ("203.0.113.1", "a@exptwo.test"),
    ("203.0.113.1", "a@exptemp.test"), ("203.0.113.1", "a@expbad.test"), ("2001:db8::cb01", "a@expv6.test"),
]
HELO = "mail.helo.test"
RECEIVER = "mx.receiver.test"   # %{r}, as test_spf --table has it
NOW = "1700000000"              # %{t}


def fake_lookup(name, qtype, strict=True, timeout=30):
    name = name.rstrip(".").lower()
    out = []
    for n, t, v in RECORDS:
        if n != name or t != qtype:
            continue
        if v == "TEMPFAIL":
            raise spf.TempError("DNS timeout")
        if t == "TXT":
            out.append(((name, t), [v.encode()]))
        elif t == "MX":
            out.append(((name, t), (10, v)))
        else:
            out.append(((name, t), v))
    return out


def pyspf_one(ip, sender):
    """(result, explanation of a fail or None)."""
    q = spf.query(i=ip, s=sender, h=HELO, receiver=RECEIVER, querytime=0)
    q.t = NOW
    res, _, exp = q.check()
    if res != "fail" or exp == spf.EXPLANATIONS["fail"]:
        exp = None   # pyspf's own text when the domain gave none
    return res, exp


def pyspf_results(monkeypatch):
    monkeypatch.setattr(spf, "DNSLookup", fake_lookup)
    return [pyspf_one(ip, sender) for ip, sender in CASES]


def tern_results(tmp_path):
    table = tmp_path / "table"
    with open(table, "w") as f:
        for n, t, v in RECORDS:
            f.write(f"rr {n} {t} {v}\n")
        for ip, sender in CASES:
            f.write(f"case {ip} {sender} {HELO}\n")
    p = subprocess.run([TEST_SPF, "--table", str(table)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        res, exp = line.split("\t", 1)
        out.append((res, None if exp == "-" else exp))
    return out


def test_same_results_as_pyspf(tmp_path, monkeypatch):
    theirs = pyspf_results(monkeypatch)
    ours = tern_results(tmp_path)
    assert len(ours) == len(CASES)
    diff = [(c, o, t) for c, o, t in zip(CASES, ours, theirs) if o[0] != t[0]]
    assert not diff, diff
    # the table covers every result there is
    assert {r for r, _ in ours} == {"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"}


def test_same_explanations_as_pyspf(tmp_path, monkeypatch):
    theirs = pyspf_results(monkeypatch)
    ours = tern_results(tmp_path)
    diff = [(c, o, t) for c, o, t in zip(CASES, ours, theirs) if o[0] == "fail" and o[1] != t[1]]
    assert not diff, diff
    got = {c[1]: o[1] for c, o in zip(CASES, ours) if o[1]}
    # the cases that have one, and only those
    assert set(got) == {"alice@expl.test", "bob@expred.test", "a@expv6.test"}, got
    assert got["alice@expl.test"] == ("203.0.113.1 is not one of expl.test's servers (alice, 203.0.113.1, "
                                      "mx.receiver.test, 1700000000, test.expl, alice%40expl.test)")
    assert got["a@expv6.test"].startswith("2001:db8::cb01 and 2.0.0.1.0.D.B.8.")

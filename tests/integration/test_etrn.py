"""ETRN (RFC 1985): who may, the syntax, and the reply codes."""
import pytest

from conftest import codes, free_port, recv_reply, recv_until


def queued_tern(make_tern, **config):
    closed = free_port()
    cfg = {"relay": {"smarthost": f"[127.0.0.1]:{closed}"}, "queue": {"retry": "1h"}}
    for k, v in config.items():
        cfg.setdefault(k, {}).update(v)
    return make_tern(config=cfg)


def say(s, line):
    s.sendall(line.encode() + b"\r\n")
    return recv_reply(s)


def queue_remote(t, rcpt):
    with t.smtp() as c:
        c.ehlo()
        c.mail("sender@example.test")
        assert c.rcpt(rcpt)[0] == 250
        assert c.data(b"Subject: etrn\r\n\r\nx\r\n")[0] == 250


def test_ehlo_advertises_etrn(make_tern):
    t = queued_tern(make_tern)
    s = t.connect()
    assert "250-ETRN\r\n" in say(s, "EHLO client.test")


def test_etrn_codes_for_trusted_client(make_tern):
    t = queued_tern(make_tern)
    queue_remote(t, "a@remote.test")
    s = t.connect()
    say(s, "EHLO client.test")
    r = say(s, "ETRN remote.test")
    # 253 "n pending messages started", or 250 / 251 from a scheduler
    # that has already tried them
    assert r[:3] in ("250", "251", "253"), r
    if r.startswith("253"):
        assert r.startswith("253 2.0.0 OK 1 pending message for node remote.test started")
    assert say(s, "ETRN nothing-here.test").startswith("251 2.0.0 OK no messages waiting for node nothing-here.test")
    assert say(s, "ETRN @remote.test")[:3] in ("250", "251", "253")
    assert say(s, "ETRN #default")[:3] in ("250", "251", "253")
    assert say(s, "etrn nothing-here.test")[:3] == "251"
    assert "event=etrn" in t.log()


@pytest.mark.parametrize("arg", ["", " ", "bad_domain", "-lead.test", ".dot.test", "a b", "x" * 256,
                                 "@", "#", "[127.0.0.1]"])
def test_etrn_syntax(make_tern, arg):
    t = queued_tern(make_tern)
    s = t.connect()
    say(s, "EHLO client.test")
    assert say(s, f"ETRN {arg}".rstrip() if arg.strip() == "" else f"ETRN {arg}").startswith("501 5.5.4")


def test_etrn_not_allowed_for_untrusted(make_tern):
    t = queued_tern(make_tern, relay={"trusted_networks": "10.0.0.0/8"})
    s = t.connect()
    say(s, "EHLO client.test")
    assert say(s, "ETRN remote.test").startswith("459 4.7.1 <remote.test>: ETRN not allowed")


def test_etrn_sequence(make_tern):
    t = queued_tern(make_tern)
    s = t.connect()
    assert say(s, "ETRN remote.test").startswith("503 ")
    say(s, "EHLO client.test")
    say(s, "MAIL FROM:<a@example.test>")
    assert say(s, "ETRN remote.test").startswith("503 ")
    say(s, "RSET")
    assert say(s, "ETRN remote.test")[:3] in ("250", "251", "253")


def test_etrn_pipelined(make_tern):
    t = queued_tern(make_tern)
    s = t.connect()
    s.sendall(b"EHLO client.test\r\nETRN a.test\r\nETRN b.test\r\nNOOP\r\n")
    out = recv_until(s, 4)
    assert codes(out) == [250, 251, 251, 250]

"""SMTP protocol points: cross-protocol (HTTP) requests, postmaster,
source routes, SMTPUTF8 (RFC 6531/6532), CHUNKING/BINARYMIME (RFC 3030)."""
import os
import socket

import pytest

from smtpraw import Raw


# ---- HTTP on an SMTP port ------------------------------------------------------

@pytest.mark.parametrize("req", [
    b"GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: mx.test\r\nContent-Length: 40\r\n\r\n",
    b"CONNECT mx.test:25 HTTP/1.1\r\n\r\n",
    b"PUT /x HTTP/1.0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"HEAD / HTTP/1.1\n\n",            # bare LFs: caught at its first LF
    b"Host: mx.test\r\n",
])
def test_http_request_ends_the_session(make_tern, req):
    """The session ends at the request line: the SMTP lines a form could
    carry after it are never run (they would deliver a message)."""
    t = make_tern()
    with Raw(t.port()) as c:
        c.send(req + b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
               b"Subject: forged\r\n\r\nx\r\n.\r\n")
        assert c.closed()
        assert c.buf == b""       # not a word: the peer is not an SMTP client
    t.wait_log("event=http_request")
    t.wait_log("event=disconnect")
    assert " command=MAIL" not in t.log()
    assert t.messages("alice@example.test") == []


def test_http_after_smtp_commands(make_tern):
    """Earlier replies of the batch still go out; nothing after the request."""
    t = make_tern()
    with Raw(t.port()) as c:
        c.send(b"EHLO client.test\r\nGET /x HTTP/1.1\r\nNOOP\r\n")
        code, _ = c.expect(250)
        assert c.closed()
        assert c.buf == b""
    t.wait_log("event=http_request")


def test_words_like_http_methods_are_not_http(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("GET /", 500, "5.5.1")
        c.cmd("HELP GET", 214)
        c.cmd("NOOP", 250)


# ---- postmaster (RFC 5321 4.5.1) ----------------------------------------------

def send_one(t, rcpt, subject):
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<someone@remote.test>", 250)
        c.cmd(f"RCPT TO:<{rcpt}>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(f"Subject: {subject}\r\n\r\nhi\r\n.\r\n".encode())
        c.expect(250, "2.0.0")


def has_subject(msgs, subject):
    return any(f"Subject: {subject}\n".encode() in m for m in msgs)


def test_postmaster_without_alias_goes_to_first_user(make_tern):
    """Neither alias nor user: <Postmaster> and postmaster@ each local
    domain are accepted and reach the domain's first user (the first line
    of the users file for it), or the file's first user."""
    t = make_tern(users={"bob@example.test": "b", "alice@example.test": "a"},
                  config={"relay": {"trusted_networks": "10.255.0.0/16"}})
    send_one(t, "Postmaster", "pm-bare")
    send_one(t, "PostMaster@Example.Test", "pm-domain")
    send_one(t, "postmaster@localhost", "pm-other-domain")   # no users there
    msgs = t.wait_messages("bob@example.test", 3)
    for subj in ("pm-bare", "pm-domain", "pm-other-domain"):
        assert has_subject(msgs, subj), subj
    assert t.messages("alice@example.test") == []


def test_postmaster_configured_address(make_tern):
    t = make_tern(config={"domains": {"postmaster": "bob@example.test"},
                          "relay": {"trusted_networks": "10.255.0.0/16"}})
    send_one(t, "postmaster@example.test", "pm-conf")
    assert has_subject(t.wait_messages("bob@example.test", 1), "pm-conf")
    assert t.messages("alice@example.test") == []


def test_postmaster_alias_wins(make_tern, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("postmaster: bob@example.test\n")
    t = make_tern(config={"aliases": {"file": str(aliases)}, "domains": {"postmaster": "alice@example.test"}})
    send_one(t, "Postmaster", "pm-alias")
    assert has_subject(t.wait_messages("bob@example.test", 1), "pm-alias")
    assert t.messages("alice@example.test") == []


def test_postmaster_with_no_users_has_its_own_maildir(make_tern):
    t = make_tern(users={})
    send_one(t, "POSTMASTER@example.test", "pm-alone")
    assert has_subject(t.wait_messages("postmaster@example.test", 1), "pm-alone")
    # any other unknown local part is still refused
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<someone@remote.test>", 250)
        c.cmd("RCPT TO:<webmaster@example.test>", 550, "5.1.1")


# ---- source routes (RFC 5321 3.6.1, appendix C) --------------------------------

def test_source_routes_accepted_and_stripped(make_tern):
    """An untrusted client's routes are dropped: the final mailbox gets the
    mail, the sender is recorded without the route."""
    t = make_tern(config={"relay": {"trusted_networks": "10.255.0.0/16"}})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<@hop1.remote.test,@hop2.remote.test:sender@remote.test>", 250, "2.1.0")
        c.cmd("RCPT TO:<@mx.test,@relay.example:alice@example.test>", 250, "2.1.5")
        c.cmd("RCPT TO:<@mx.test:bob@example.test>", 250, "2.1.5")
        # the stripped address goes through the relay rules as usual
        c.cmd("RCPT TO:<@mx.test:someone@elsewhere.test>", 554, "5.7.1")
        c.cmd("DATA", 354)
        c.send(b"Subject: routed\r\n\r\nhi\r\n.\r\n")
        c.expect(250, "2.0.0")
    msg = t.wait_messages("alice@example.test", 1)[0]
    assert msg.startswith(b"Return-Path: <sender@remote.test>\n")
    assert b"hop1" not in msg
    assert t.wait_messages("bob@example.test", 1)
    log = t.log()
    assert "from=\"sender@remote.test\"" in log and "hop1" not in log


# ---- SMTPUTF8 (RFC 6531, RFC 6532) ---------------------------------------------

def u(s):
    """A str whose latin-1 encoding is s's UTF-8 (Raw sends latin-1)."""
    return s.encode("utf-8").decode("latin-1")


USER8 = "\u7528\u6237@example.test"          # 用户@example.test
JOERG = "j\u00f6rg@remote.test"


def test_smtputf8_advertised(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        code, lines = c.cmd("EHLO client.test", 250)
        assert any(l[4:] == "SMTPUTF8" for l in lines)
        # not after HELO: the parameter needs EHLO
        c.cmd("HELO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test> SMTPUTF8", 555, "5.5.4")


def test_utf8_addresses_need_the_parameter(make_tern):
    t = make_tern(users={USER8: "pw", "alice@example.test": "a"})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd(f"MAIL FROM:<{u(JOERG)}>", 553, "5.6.7")
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd(f"RCPT TO:<{u(USER8)}>", 553, "5.6.7")
        c.cmd("RSET", 250)
        # malformed UTF-8 is a syntax error even with the parameter
        c.cmd("MAIL FROM:<j\xc3(rg@remote.test> SMTPUTF8", 501)
        c.cmd("MAIL FROM:<\xc0\xafx@remote.test> SMTPUTF8", 501)
        c.cmd("MAIL FROM:<a@remote.test> SMTPUTF8=1", 501, "5.5.4")
        c.cmd(f"MAIL FROM:<{u(JOERG)}> SMTPUTF8", 250, "2.1.0")
        c.cmd(f"RCPT TO:<{u(USER8)}>", 250, "2.1.5")
        c.cmd("RCPT TO:<alice@example.test>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(u("From: J\u00f6rg <" + JOERG + ">\r\nSubject: \u4f60\u597d\r\n\r\nbody \u00e9\r\n.\r\n"))
        c.expect(250, "2.0.0")
    # delivered into a Maildir named by the UTF-8 local part
    d = os.path.join(t.state, "mail", "example.test", "\u7528\u6237", "Maildir", "new")
    msgs = t.wait_messages(USER8, 1)
    assert os.path.isdir(d)
    assert "Subject: \u4f60\u597d\n".encode() in msgs[0]
    assert ("Return-Path: <" + JOERG + ">\n").encode() in msgs[0]
    assert b" with UTF8SMTP " in msgs[0]
    assert t.wait_messages("alice@example.test", 1)


def test_utf8_headers_need_the_parameter(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        for params, code in (("", 554), (" SMTPUTF8", 250)):
            c.cmd(f"MAIL FROM:<a@remote.test>{params}", 250)
            c.cmd("RCPT TO:<alice@example.test>", 250)
            c.cmd("DATA", 354)
            c.send(u("Subject: caf\u00e9 \u2615\r\n\r\nhi\r\n.\r\n"))
            c.expect(code, "5.6.7" if code == 554 else "2.0.0")
        # 8-bit in the body alone is no SMTPUTF8 matter
        c.cmd("MAIL FROM:<a@remote.test> BODY=8BITMIME", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(u("Subject: plain\r\n\r\ncaf\u00e9\r\n.\r\n"))
        c.expect(250, "2.0.0")
    msgs = t.wait_messages("alice@example.test", 2)
    assert sum("caf\u00e9 \u2615".encode() in m for m in msgs) == 1


def test_smtputf8_flag_kept_in_the_queue(make_tern):
    """A message that waits in the queue keeps its SMTPUTF8 flag (it
    decides how it may be relayed); others carry no flag."""
    t = make_tern(config={"dns": {"servers": "127.0.0.1:9"}, "queue": {"retry": "1h"}})
    ids = []
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        for params in (" SMTPUTF8", ""):
            c.cmd(f"MAIL FROM:<alice@example.test>{params}", 250)
            c.cmd("RCPT TO:<someone@far.test>", 250)
            c.cmd("DATA", 354)
            c.send(b"Subject: q\r\n\r\nhi\r\n.\r\n")
            ids.append(c.expect(250)[1][-1].split()[-1])
    qdir = os.path.join(t.state, "queue", "msg")
    with open(os.path.join(qdir, ids[0]), "rb") as f:
        assert b"\nsmtputf8 1\n" in f.read().split(b"\n\n", 1)[0] + b"\n"
    with open(os.path.join(qdir, ids[1]), "rb") as f:
        assert b"smtputf8" not in f.read().split(b"\n\n", 1)[0]
    t.restart()
    r = t.cli("queue", "list")
    assert ids[0] in r.stdout and ids[1] in r.stdout

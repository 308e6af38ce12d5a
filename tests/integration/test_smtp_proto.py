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


# ---- BDAT (RFC 3030 CHUNKING, BINARYMIME) ----------------------------------------

def bdat_txn(c, rcpt="alice@example.test", body=""):
    c.cmd(f"MAIL FROM:<a@remote.test>{body}", 250)
    c.cmd(f"RCPT TO:<{rcpt}>", 250)


def stored(msg):
    """The message as the client sent it: what follows tern's Received:."""
    head, _, rest = msg.partition(b"\n\t")
    return msg[msg.index(b";\n\t") + 3:].split(b"\n", 1)[1]


def test_chunking_advertised(make_tern):
    t = make_tern()
    with t.smtp() as s:
        s.ehlo()
        assert s.has_extn("chunking") and s.has_extn("binarymime") and s.has_extn("smtputf8")


def test_bdat_one_chunk_byte_exact(make_tern):
    """No dot-unstuffing and no end marker: a line '.' and a line '..x'
    arrive as they were sent; CRLF is stored as LF like DATA's."""
    t = make_tern()
    body = b"Subject: bdat\r\n\r\n.\r\n..x\r\nlast line\r\n"
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        bdat_txn(c)
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        c.expect(250, "2.0.0")
        c.cmd("NOOP", 250)
        assert c.buf == b""
    assert stored(t.wait_messages("alice@example.test", 1)[0]) == body.replace(b"\r\n", b"\n")


def test_bdat_pipelined_chunks_split_anywhere(make_tern):
    """Chunks split inside a line and between CR and LF, all in one
    write; one reply per chunk, in order; then BDAT 0 LAST ends it."""
    t = make_tern()
    body = b"Subject: pieces\r\n\r\nline one\r\nline two\r\n"
    cuts = [5, 17, 18, 30]       # 17|18 splits the CRLF after the header line
    pieces = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        bdat_txn(c)
        c.send(b"".join(b"BDAT %d\r\n" % len(p) + p for p in pieces) + b"BDAT 0 LAST\r\nNOOP\r\n")
        for p in pieces:
            code, lines = c.expect(250, "2.0.0")
            assert f"{len(p)} octets" in lines[-1]
        c.expect(250, "2.0.0")       # the message
        c.expect(250, "2.0.0")       # NOOP
        assert c.buf == b""
    assert stored(t.wait_messages("alice@example.test", 1)[0]) == body.replace(b"\r\n", b"\n")


def test_bdat_without_transaction_is_read_and_refused(make_tern):
    """The chunk's octets are read even when refused: the 'NOOP' inside it
    is data, never a command."""
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send(b"BDAT 6\r\nNOOP\r\n")
        c.expect(503, "5.5.1")
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.send(b"BDAT 6 LAST\r\nRSET\r\n")
        c.expect(554, "5.5.1")        # no recipient
        c.cmd("RCPT TO:<alice@example.test>", 250)   # the RSET was data
        c.cmd("BDAT x", 501, "5.5.4")
        c.cmd("BDAT 1 FIRST", 501, "5.5.4")
        c.cmd("NOOP", 250)
        assert c.buf == b""


def test_data_and_rcpt_after_bdat_refused(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        bdat_txn(c)
        c.send(b"BDAT 16\r\nSubject: x\r\n\r\nab")
        c.expect(250)
        c.cmd("DATA", 503, "5.5.1")
        c.cmd("RCPT TO:<bob@example.test>", 503, "5.5.1")
        c.send(b"BDAT 4 LAST\r\ncd\r\n")
        c.expect(250, "2.0.0")
    msg = t.wait_messages("alice@example.test", 1)[0]
    assert stored(msg) == b"Subject: x\n\nabcd\n"
    assert t.messages("bob@example.test") == []


def test_bdat_over_the_size_limit_resets(make_tern):
    """The chunk that passes the limit is read and dropped with 552 5.3.4,
    the transaction is gone: the next pipelined chunk gets 503, and its
    octets are dropped too; after that the session works as before."""
    t = make_tern(config={"smtp": {"max_message_size": "2048"}})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        bdat_txn(c)
        first = b"Subject: big\r\n\r\n" + b"x" * 1480 + b"\r\n"
        c.send(b"BDAT %d\r\n" % len(first) + first)
        c.expect(250)
        c.send(b"BDAT 1000\r\n" + b"NOOP\r\n" * 166 + b"NOOP" + b"BDAT 6 LAST\r\nQUIT\r\n" + b"NOOP\r\n")
        c.expect(552, "5.3.4")
        c.expect(503, "5.5.1")
        c.expect(250, "2.0.0")        # the NOOP after the chunks
        assert c.buf == b""
        # an announced size over the limit is refused the same way
        bdat_txn(c)
        c.send(b"BDAT 4096 LAST\r\n" + b"y" * 4096)
        c.expect(552, "5.3.4")
        c.cmd("RCPT TO:<alice@example.test>", 503, "5.5.1")   # no transaction
        bdat_txn(c)
        c.send(b"BDAT 15 LAST\r\nSubject: ok\r\n\r\n")
        c.expect(250, "2.0.0")
    msgs = t.wait_messages("alice@example.test", 1)
    assert len(msgs) == 1 and stored(msgs[0]) == b"Subject: ok\n\n"


def test_bdat_text_message_with_bare_lf_refused(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        bdat_txn(c)
        body = b"Subject: x\r\n\r\nbare\nlf\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        c.expect(550, "5.6.0")
        c.cmd("NOOP", 250)


def test_binarymime_body_kept_as_it_came(make_tern):
    """BODY=BINARYMIME: the header section is text, the body's octets
    (CR, LF, NUL, all 256 values) are stored exactly."""
    t = make_tern()
    binary = bytes(range(256)) * 4 + b"\r\n.\r\n\n\r"
    head = b"Subject: bin\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\r\n"
    body = head + binary
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test> BODY=BINARYMIME", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 503, "5.5.1")       # BINARYMIME needs BDAT
        c.send(b"BDAT 500\r\n" + body[:500])
        c.expect(250)
        c.send(b"BDAT %d LAST\r\n" % (len(body) - 500) + body[500:])
        c.expect(250, "2.0.0")
    msg = t.wait_messages("alice@example.test", 1)[0]
    assert stored(msg) == head.replace(b"\r\n", b"\n") + binary

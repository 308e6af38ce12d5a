"""The SMTP dialog of issue 2 against the real binary: the seeds' Winmail
telnet session, EHLO, every command's reply, MAIL/RCPT parameters, the
sequence and syntax errors, relaying, aliases, PIPELINING, dot-stuffing
and a real client (swaks)."""
import os
import re
import subprocess

import pytest

from smtpraw import Raw, message, wait_for


def qfile(t, qid):
    with open(os.path.join(t.state, "queue", "msg", qid), "rb") as f:
        return f.read().decode("latin-1")


def block_delivery(t, addr):
    """Make local delivery to addr fail (a file where its directory should
    be), so its message stays in the queue."""
    local, domain = addr.split("@")
    d = os.path.join(t.state, "mail", domain)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, local), "w").close()


def aliases(t, text):
    path = os.path.join(t.base, "aliases")
    with open(path, "w") as f:
        f.write(text)
    return {"aliases": {"file": path}}


# ---- the seeds' Winmail telnet dialog -------------------------------------

WINMAIL_BODY = (b"From: test1@domain.com\r\n"
                b"To: alice@example.test\r\n"
                b"Date: Mon, 25 Oct 2004 14:24:27 +0800\r\n"
                b"Subject: test mail\r\n"
                b"Hi, test2\r\n"
                b"This is a test mail, you don't reply it.\r\n")


def test_winmail_telnet_dialog_lower_case(make_tern):
    t = make_tern()
    c = Raw(t.port())
    code, lines = c.greeting
    assert code == 220 and lines[0].startswith("220 mx.test ")
    # Byte for byte as typed into telnet (which sends CRLF), addresses
    # changed to ours.  The AUTH step of the seed is skipped, as the seed
    # says it may be for mail to the server's own domains.
    c.send(b"helo cnu.com\r\n")
    assert c.expect(250)[1] == ["250 mx.test"]
    c.send(b"ehlo cnu.com\r\n")
    code, lines = c.expect(250)
    assert lines[0] == "250-mx.test" and len(lines) > 1
    c.send(b"mail from:<test1@domain.com>\r\n")
    c.expect(250, "2.1.0")
    c.send(b"rcpt to:<alice@example.test>\r\n")
    c.expect(250, "2.1.5")
    c.send(b"data\r\n")
    c.expect(354)
    c.send(WINMAIL_BODY)
    c.send(b".\r\n")
    code, lines = c.expect(250, "2.0.0")
    qid = re.search(r"queued as ([0-9A-F]{16})", lines[-1]).group(1)
    c.send(b"quit\r\n")
    c.expect(221, "2.0.0")
    assert c.closed()
    c.close()

    msg = t.wait_messages("alice@example.test", 1)[0].decode("latin-1")
    head, _, body = msg.partition("\n\n")
    # The seed has no blank line after the header: everything is header-ish
    # text, delivered as sent (LF line ends in the Maildir).
    assert head.startswith("Return-Path: <test1@domain.com>\nDelivered-To: alice@example.test\nReceived: ")
    received = re.search(r"\nReceived: (.*?)\n(?=\S)", head, re.S).group(1)
    assert "from cnu.com (" in received and "[127.0.0.1]" in received
    assert "by mx.test" in received
    assert "with ESMTP id " + qid in received
    assert "for <alice@example.test>" in received
    assert WINMAIL_BODY.decode().replace("\r\n", "\n") in msg
    assert msg.endswith("you don't reply it.\n")


def test_helo_only_received_says_smtp_and_two_rcpts_no_for(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("HELO old.client", 250)
        qid = c.send_mail("x@remote.test", ["alice@example.test", "bob@example.test"], message())
    for who in ("alice@example.test", "bob@example.test"):
        msg = t.wait_messages(who, 1)[0].decode()
        assert f"Delivered-To: {who}\n" in msg
        received = msg.split("Received: ", 1)[1].split("\nFrom:")[0]
        assert "with SMTP id " + qid in received
        assert "for <" not in received


# ---- EHLO and the simple commands -------------------------------------------

def test_ehlo_format(make_tern):
    t = make_tern(config={"smtp": {"max_message_size": "10M"},
                          "relay": {"trusted_networks": "192.0.2.1/32"}})
    with Raw(t.port()) as c:
        code, lines = c.cmd("EHLO client.test", 250)
        assert lines[0] == "250-mx.test"
        assert all(l.startswith("250-") for l in lines[:-1]) and lines[-1].startswith("250 ")
        kw = [l[4:] for l in lines[1:]]
        for k in ("PIPELINING", "SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"):
            assert k in kw, lines
        # port 25 without TLS, untrusted client: no password mechanism in the clear
        assert "STARTTLS" not in kw
        assert not any(k.startswith("AUTH") and ("PLAIN" in k or "LOGIN" in k) for k in kw), kw


@pytest.mark.parametrize("verb", ["ehlo", "EhLo", "EHLO"])
def test_verbs_case_insensitive(make_tern, verb):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd(f"{verb} client.test", 250)
        c.cmd("mAiL fRoM:<a@remote.test>", 250, "2.1.0")
        c.cmd("RcPt To:<bob@example.test>", 250, "2.1.5")
        c.cmd("rset", 250, "2.0.0")
        c.cmd("nOoP", 250, "2.0.0")
        c.cmd("QuIt", 221, "2.0.0")


def test_helo_reply_and_missing_argument(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("HELO", 501, "5.5.4")
        c.cmd("EHLO", 501, "5.5.4")
        assert c.cmd("HELO client.test", 250)[1] == ["250 mx.test"]


def test_help_noop_rset_quit(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        code, lines = c.cmd("HELP", 214)
        assert lines[-1].startswith("214 2.0.0")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("NOOP anything", 250, "2.0.0")
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("RSET x", 501, "5.5.4")
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("RSET", 250, "2.0.0")
        # RSET dropped the transaction
        c.cmd("DATA", 503, "5.5.1")
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("QUIT", 221, "2.0.0")
        assert c.closed()


def test_vrfy_same_answer_for_known_and_unknown(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        known = c.cmd("VRFY alice@example.test", 252, "2.5.2")[1]
        unknown = c.cmd("VRFY nobody@example.test", 252, "2.5.2")[1]
        assert known == unknown
        assert c.cmd("VRFY alice", 252)[1] == known


def test_expn_502(make_tern):
    t = make_tern()
    t.stop()
    t.sections.update(aliases(t, "staff: alice@example.test, bob@example.test\n"))
    t.write_config()
    t.start()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        a = c.cmd("EXPN staff@example.test", 502, "5.5.1")[1]
        b = c.cmd("EXPN nolist@example.test", 502, "5.5.1")[1]
        assert a == b


@pytest.mark.parametrize("verb", ["TURN", "SEND FROM:<a@b.test>", "SOML FROM:<a@b.test>",
                                  "SAML FROM:<a@b.test>", "turn"])
def test_obsolete_commands_502(make_tern, verb):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd(verb, 502, "5.5.1")
        c.cmd("NOOP", 250)


@pytest.mark.parametrize("line", ["FOO", "XYZZY bar", "MAILFROM:<a@b.test>", "EHLOX client"])
def test_unknown_command_500(make_tern, line):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd(line, 500, "5.5.1")
        c.cmd("NOOP", 250)


def test_empty_line_is_an_error_not_a_hang(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        code, _ = c.cmd("")
        assert code in (500, 501)
        c.cmd("NOOP", 250)


# ---- MAIL FROM and its parameters ---------------------------------------------

def test_null_reverse_path(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send_mail("", ["alice@example.test"], message("bounce"))
    msg = t.wait_messages("alice@example.test", 1)[0].decode()
    assert msg.startswith("Return-Path: <>\n")


def test_size_parameter(make_tern):
    t = make_tern(config={"smtp": {"max_message_size": "100K"}})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test> SIZE=102401", 552, "5.3.4")
        c.cmd("MAIL FROM:<a@remote.test> SIZE=102400", 250, "2.1.0")
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<a@remote.test> SIZE=99999999999999999999999", 501)
        c.cmd("MAIL FROM:<a@remote.test> SIZE=abc", 501, "5.5.4")
        c.cmd("MAIL FROM:<a@remote.test> SIZE=1000", 250, "2.1.0")


@pytest.mark.parametrize("body", ["7BIT", "8BITMIME", "8bitmime"])
def test_body_parameter(make_tern, body):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd(f"MAIL FROM:<a@remote.test> BODY={body}", 250, "2.1.0")
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send("Subject: caf\xe9\r\n\r\nna\xefve\r\n.\r\n")
        c.expect(250, "2.0.0")
    msg = t.wait_messages("alice@example.test", 1)[0]
    assert b"na\xefve\n" in msg


def test_body_bad_value(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test> BODY=BINARY", 501, "5.5.4")
        c.cmd("MAIL FROM:<a@remote.test> BODY=8BIT", 501, "5.5.4")


@pytest.mark.parametrize("param", ["FOO=bar", "XYZ", "SMTPUTF8X=1"])
def test_unknown_mail_parameter_555(make_tern, param):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd(f"MAIL FROM:<a@remote.test> {param}", 555, "5.5.4")
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd(f"RCPT TO:<alice@example.test> {param}", 555, "5.5.4")


def test_parameters_need_ehlo(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("HELO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test> SIZE=10", 555, "5.5.4")


def test_dsn_parameters_kept_in_queue(make_tern):
    t = make_tern()
    block_delivery(t, "alice@example.test")
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test> RET=HDRS ENVID=QQ314159", 250, "2.1.0")
        c.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Alice@example.test",
              250, "2.1.5")
        c.cmd("RCPT TO:<bob@example.test> NOTIFY=NEVER", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        qid = c.expect(250, "2.0.0")[1][-1].split()[-1]
    t.wait_messages("bob@example.test", 1)
    q = qfile(t, qid)
    env = q.split("\n\n", 1)[0]
    assert "envid =QQ314159" in env
    assert re.search(r"^ret [12]$", env, re.M) and "ret 0" not in env
    rc = [l for l in env.splitlines() if l.startswith("rcpt ")]
    assert len(rc) == 2
    assert "=alice@example.test" in rc[0] and "=rfc822;Alice@example.test" in rc[0]
    assert rc[0].split()[2] != "0" and rc[1].split()[2] != "0"
    assert rc[0].split()[2] != rc[1].split()[2]
    show = t.cli("queue", "show", qid)
    assert show.returncode == 0, show.stderr
    assert f"id: {qid}" in show.stdout and "from: <a@remote.test>" in show.stdout
    assert "rcpt: alice@example.test" in show.stdout


@pytest.mark.parametrize("bad", ["RET=ALL", "ENVID=", "RET=HDRS RET=FULL"])
def test_bad_dsn_parameters(make_tern, bad):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd(f"MAIL FROM:<a@remote.test> {bad}", 501)
        c.cmd("MAIL FROM:<a@remote.test> RET=FULL", 250)


def test_many_recipients(make_tern):
    users = {f"u{i}@example.test": "pw" for i in range(30)}
    t = make_tern(users=users)
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send_mail("a@remote.test", list(users), message())
    for u in users:
        t.wait_messages(u, 1)


def test_same_recipient_twice_one_copy(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send_mail("a@remote.test", ["alice@example.test", "ALICE@example.test"], message())
        c.send_mail("a@remote.test", ["bob@example.test"], message("next"))
    t.wait_messages("bob@example.test", 1)
    assert len(t.messages("alice@example.test")) == 1


# ---- sequence and syntax errors -----------------------------------------------

def test_sequence_errors_503(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("MAIL FROM:<a@remote.test>", 503, "5.5.1")   # before HELO
        c.cmd("RCPT TO:<alice@example.test>", 503, "5.5.1")
        c.cmd("DATA", 503, "5.5.1")
        c.cmd("EHLO client.test", 250)
        c.cmd("RCPT TO:<alice@example.test>", 503, "5.5.1")  # before MAIL
        c.cmd("DATA", 503, "5.5.1")                          # before MAIL
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("MAIL FROM:<b@remote.test>", 503, "5.5.1")     # nested MAIL
        code, lines = c.cmd("DATA")                          # no valid RCPT yet
        assert code in (503, 554) and lines[-1][4:].startswith("5.5.1")  # RFC 5321 3.3
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)


def test_data_without_valid_rcpt(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1")
        code, lines = c.cmd("DATA")
        assert code in (503, 554) and lines[-1][4:].startswith("5.5.1")


@pytest.mark.parametrize("line,enh", [
    ("MAIL FROM:", "5.1.7"),
    ("MAIL FROM:a@remote.test", "5.1.7"),
    ("MAIL FROM:<a@remote.test", "5.1.7"),
    ("MAIL TO:<a@remote.test>", "5.1.7"),
    ("MAIL", "5.1.7"),
    ("MAIL FROM:<a@@remote.test>", "5.1.7"),
])
def test_mail_syntax_501(make_tern, line, enh):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd(line, 501, enh)
        c.cmd("MAIL FROM:<a@remote.test>", 250)


@pytest.mark.parametrize("line", ["RCPT TO:", "RCPT TO:alice@example.test", "RCPT FROM:<alice@example.test>",
                                  "RCPT TO:<alice@example.test", "RCPT"])
def test_rcpt_syntax_501(make_tern, line):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd(line, 501, "5.1.3")
        c.cmd("RCPT TO:<alice@example.test>", 250)


def test_data_with_argument_501(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA now", 501, "5.5.4")
        c.cmd("DATA", 354)


def test_unknown_user_550(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<carol@example.test>", 550, "5.1.1")
        c.cmd("RCPT TO:<carol@localhost>", 550, "5.1.1")
        c.cmd("RCPT TO:<alice@example.test>", 250, "2.1.5")


def test_relay_denied_554(make_tern):
    t = make_tern(config={"relay": {"trusted_networks": "192.0.2.1/32"}})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<someone@elsewhere.test>", 554, "5.7.1")
        c.cmd("RCPT TO:<alice%elsewhere.test@example.test>", 554, "5.7.1")
        c.cmd("RCPT TO:<@example.test:someone@elsewhere.test>", 554, "5.7.1")
        c.cmd("RCPT TO:<alice@example.test>", 250, "2.1.5")


def test_trusted_network_may_relay(make_tern):
    t = make_tern()   # default trusted_networks include 127.0.0.0/8
    block_delivery(t, "alice@example.test")
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<someone@elsewhere.test>", 250, "2.1.5")


def test_postmaster_accepted(make_tern):
    t = make_tern(start=False, config={"relay": {"trusted_networks": "192.0.2.1/32"}})
    t.sections.update(aliases(t, "postmaster: alice@example.test\n"))
    t.write_config()
    t.start()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<>", 250)
        c.cmd("RCPT TO:<Postmaster>", 250, "2.1.5")
        c.cmd("RCPT TO:<postmaster@example.test>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        _, lines = c.expect(250, "2.0.0")
    qid = lines[-1].split()[-1]
    t.wait_messages("alice@example.test", 1)
    # no copy can come after the message is done
    t.wait_message_done(qid)
    assert len(t.messages("alice@example.test")) == 1


def test_alias_expands_to_two_users(make_tern):
    t = make_tern(start=False)
    t.sections.update(aliases(t, "# team\nteam: alice@example.test, bob\n"))
    t.write_config()
    t.start()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send_mail("a@remote.test", ["team@example.test"], message("to the team"))
    for who in ("alice@example.test", "bob@example.test"):
        msg = t.wait_messages(who, 1)[0].decode()
        assert f"Delivered-To: {who}\n" in msg and "Subject: to the team" in msg


# ---- PIPELINING ------------------------------------------------------------------

def test_pipelined_group_in_one_write(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.send(b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert c.expect(250)[1][0] == "250-mx.test"
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(550, "5.1.1")
        c.expect(250, "2.1.5")
        c.expect(354)
        assert c.buf == b""
        c.send(message("piped") + ".\r\nQUIT\r\n")
        c.expect(250, "2.0.0")
        c.expect(221, "2.0.0")
        assert c.closed()
        assert c.buf == b""
    for who in ("alice@example.test", "bob@example.test"):
        assert b"Subject: piped" in t.wait_messages(who, 1)[0]


def test_pipelined_two_messages_in_one_write(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        one = "MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        c.send(one + message("first") + ".\r\n" + one + message("second") + ".\r\nQUIT\r\n")
        for code in (250, 250, 354, 250, 250, 250, 354, 250, 221):
            c.expect(code)
        assert c.closed()
    msgs = t.wait_messages("alice@example.test", 2)
    subjects = sorted(re.search(rb"Subject: (\w+)", m).group(1) for m in msgs)
    assert subjects == [b"first", b"second"]


# ---- dot-stuffing ------------------------------------------------------------------

def test_dot_stuffing(make_tern):
    t = make_tern()
    body = ("Subject: dots\r\n\r\n"
            "..leading dot\r\n"
            "...\r\n"
            "..\r\n"
            "....four\r\n"
            "not.at.start.\r\n"
            ". space\r\n")
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send_mail("a@remote.test", ["alice@example.test"], body)
    msg = t.wait_messages("alice@example.test", 1)[0].decode()
    tail = msg.split("Subject: dots\n\n", 1)[1]
    assert tail == ".leading dot\n..\n.\n...four\nnot.at.start.\n space\n"


def test_empty_message_and_no_trailing_crlf_needed(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(b".\r\n")
        c.expect(250, "2.0.0")
    msg = t.wait_messages("alice@example.test", 1)[0].decode()
    assert msg.startswith("Return-Path: <a@remote.test>\n")


# ---- a real client ---------------------------------------------------------------------

def test_swaks_delivers(make_tern):
    t = make_tern()
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{t.port()}", "--to", "bob@example.test",
                        "--from", "swaks@remote.test", "--helo", "swaks.test",
                        "--header", "Subject: from swaks", "--body", "swaks body line"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "<-  250 2.0.0 Ok: queued as" in p.stdout
    msg = t.wait_messages("bob@example.test", 1)[0].decode()
    assert "Subject: from swaks" in msg and "swaks body line" in msg
    assert "Return-Path: <swaks@remote.test>" in msg and "from swaks.test" in msg


# ---- a client that half-closes (shutdown(SHUT_WR), as `nc -N` does) --------------

def half_closed_session(t, payload):
    """Send payload, close our sending side, read every reply up to EOF."""
    import socket
    s = socket.create_connection(("127.0.0.1", t.port()), timeout=10)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return [l[:9].decode() for l in data.split(b"\r\n") if l[3:4] == b" "]


TXN = (b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
       + message("half-closed").encode() + b".\r\n")


def test_half_close_after_dot_still_gets_250(make_tern):
    """EOF only says the client sends no more: the 250 for a message it
    sent must still reach it, or it will send the message again."""
    t = make_tern()
    for i in range(5):
        finals = half_closed_session(t, TXN)
        assert finals == ["220 mx.te", "250 HELP", "250 2.1.0", "250 2.1.5", "354 End d", "250 2.0.0"], (i, finals)
    t.wait_messages("alice@example.test", 5)


def test_half_close_after_pipelined_commands_gets_every_reply(make_tern):
    t = make_tern()
    for i in range(5):
        finals = half_closed_session(t, TXN + b"NOOP\r\nQUIT\r\n")
        assert finals == ["220 mx.te", "250 HELP", "250 2.1.0", "250 2.1.5", "354 End d", "250 2.0.0",
                          "250 2.0.0", "221 2.0.0"], (i, finals)
        finals = half_closed_session(t, b"EHLO client.test\r\nNOOP\r\nBOGUS\r\n")
        assert finals == ["220 mx.te", "250 HELP", "250 2.0.0", "500 5.5.1"], (i, finals)

"""SMTP smuggling (CVE-2023-51764 and kin): only <CRLF>.<CRLF> ends DATA.
Each variant below is sent inside a message followed by a would-be second
transaction; none may end the data, the message is refused with a 5xx after
the real end, nothing is delivered, and the "smuggled" commands are never
executed.  Bare LF, bare CR and NUL in command lines get 500."""
import os
import time

import pytest

from smtpraw import Raw

VARIANTS = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CR": b"\r.\r",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "CR.CRLF": b"\r.\r\n",
    "LF.CR": b"\n.\r",
    "CR.LF": b"\r.\n",
    "CRLF.CRCRLF": b"\r\n.\r\r\n",
    "CRLF.NULCRLF": b"\r\n.\x00\r\n",
    "CRLF.LFCRLF": b"\r\n.\n\r\n",
}

SMUGGLED = (b"MAIL FROM:<admin@example.test>\r\n"
            b"RCPT TO:<bob@example.test>\r\n"
            b"DATA\r\n"
            b"From: admin@example.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n")



def tmp_leftovers(t):
    """Files in queue/tmp that hold data (empty scratch files kept for
    reuse are fine)."""
    d = os.path.join(t.state, "queue", "tmp")
    return [n for n in os.listdir(d) if os.path.getsize(os.path.join(d, n)) > 0]

def open_data(t):
    c = Raw(t.port())
    c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<a@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    return c


@pytest.mark.parametrize("name", list(VARIANTS))
def test_smuggling_variant_refused(make_tern, name):
    t = make_tern()
    c = open_data(t)
    c.send(b"Subject: carrier\r\n\r\nfirst part" + VARIANTS[name] + SMUGGLED)
    c.send(b".\r\n")
    # Nothing answered inside the data: the first reply is the refusal at
    # the real end (had the variant ended the data, the first reply would
    # be its 250, then the smuggled commands' replies) ...
    code, lines = c.expect()
    assert 500 <= code < 600, f"{name}: the server answered inside the data: {lines}"
    assert lines[-1][4:].startswith(("5.6.0", "5.5.2")), lines
    # ... and it is the only one: the NOOP's is the next, nothing between
    c.cmd("NOOP", 250)
    assert c.buf == b""
    # and the session is in a clean state (no transaction left over)
    c.cmd("RCPT TO:<alice@example.test>", 503, "5.5.1")
    c.close()
    # once the session has ended and the queue drained, nothing can come
    t.wait_sessions_closed()
    t.wait_queue_empty()
    assert t.messages("alice@example.test") == []
    assert t.messages("bob@example.test") == []
    assert os.listdir(os.path.join(t.state, "queue", "msg")) == []
    assert tmp_leftovers(t) == []


@pytest.mark.parametrize("bad", [b"bare\nLF", b"bare\rCR", b"NUL\x00here"])
def test_bare_octets_in_data_refused(make_tern, bad):
    t = make_tern()
    c = open_data(t)
    c.send(b"Subject: x\r\n\r\n" + bad + b" in a line\r\n.\r\n")
    code, lines = c.expect()
    assert code == 550 and lines[-1].startswith("550 5.6.0"), lines
    c.cmd("NOOP", 250)
    c.close()
    # once the session has ended and the queue drained, nothing can come
    t.wait_sessions_closed()
    t.wait_queue_empty()
    assert t.messages("alice@example.test") == []


def test_real_end_after_smuggling_attempt_split_across_writes(make_tern):
    """The framer keeps its state across reads: <CRLF> then '.' then
    <CRLF> in three writes is a real end."""
    t = make_tern()
    c = open_data(t)
    c.send(b"Subject: split\r\n\r\nbody")
    for piece in (b"\r", b"\n", b".", b"\r", b"\n"):
        time.sleep(0.05)
        c.send(piece)
    c.expect(250, "2.0.0")
    c.close()
    assert t.wait_messages("alice@example.test", 1)[0].endswith(b"Subject: split\n\nbody\n")


@pytest.mark.parametrize("line", [b"NOOP\rx\r\n", b"NO\x00OP\r\n", b"NOOP\x00\r\n",
                                  b"MAIL FROM:<a@remote.test>\n\r\n"])
def test_bare_lf_cr_nul_in_command_500(make_tern, line):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send(line)
        code, lines = c.expect(500, "5.5.2")
        c.cmd("NOOP", 250)
        # MAIL with a bare LF was not executed
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        assert c.buf == b""


def test_bare_lf_does_not_end_a_command(make_tern):
    """Only CRLF ends a line: in 'EHLO a<LF>MAIL FROM:<x><CRLF>' the bare LF
    is inside one (invalid) line, which gets one 500 and runs nothing."""
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send(b"EHLO a\nMAIL FROM:<x@remote.test>\r\n")
        c.expect(500, "5.5.2")
        c.cmd("NOOP", 250)
        assert c.buf == b""
        # no MAIL ran: a transaction can start now, and RCPT before it is 503
        c.cmd("RCPT TO:<alice@example.test>", 503, "5.5.1")
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        # a line ended by LF alone waits for its CRLF, and is refused with it
        c.send(b"NOOP\n")
        c.send(b"RSET\r\n")
        c.expect(500, "5.5.2")
        c.cmd("RCPT TO:<alice@example.test>", 250)
        assert c.buf == b""


def test_pipelined_commands_with_bare_lf_are_not_split(make_tern):
    """In 'MAIL..<LF>RSET<CRLF>NOOP<CRLF>' everything up to the CRLF is one
    line, refused and never executed; what follows is read as usual."""
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send(b"MAIL FROM:<a@remote.test>\nRSET\r\nNOOP\r\n")
        c.expect(500, "5.5.2")
        c.expect(250, "2.0.0")
        c.cmd("RCPT TO:<alice@example.test>", 503, "5.5.1")
        c.cmd("QUIT", 221)
        assert c.buf == b""


def test_long_line_with_bare_lf_is_one_line(make_tern):
    """A too-long line that holds a bare LF is dropped up to its CRLF, with
    one 500: the part after the LF does not run."""
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send(b"NOOP " + b"x" * 600 + b"\nMAIL FROM:<a@remote.test>\r\nNOOP\r\n")
        c.expect(500, "5.5.2")
        c.expect(250, "2.0.0")
        c.cmd("RCPT TO:<alice@example.test>", 503, "5.5.1")
        assert c.buf == b""

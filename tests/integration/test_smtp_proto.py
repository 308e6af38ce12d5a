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

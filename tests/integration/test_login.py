"""login/ as the binary uses it: one failure count per client address for
SMTP AUTH and POP3 together, and sessions that go away while their login
is being checked or waits for its next step."""
import base64
import socket

from authutil import Dialog, b64
from conftest import recv_reply

ALICE = "alice@example.test"


class Pop:
    def __init__(self, t):
        self.s = socket.create_connection(("127.0.0.1", t.port("pop3")), timeout=20)
        self.buf = b""
        self.greeting = self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                return b""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.line()


def test_failures_count_across_protocols(make_tern):
    t = make_tern(services=("smtp", "submission", "pop3"), config={"auth": {"max_failures": "3"}})
    p = Pop(t)
    p.cmd(f"USER {ALICE}")
    assert p.cmd("PASS wrong1") == b"-ERR [AUTH] Authentication failed"
    p.cmd("USER nobody@example.test")
    assert p.cmd("PASS wrong2") == b"-ERR [AUTH] Authentication failed"
    # the third failure of this address comes over SMTP: the block
    d = Dialog(t.port("submission"))
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0wrong3")).startswith("421 4.7.0")
    # and now POP3 refuses the right password from this address too
    p = Pop(t)
    p.cmd(f"USER {ALICE}")
    assert p.cmd("PASS alicepw") == b"-ERR [AUTH] Too many failed logins from your address, try again later"
    log = t.log()
    assert "event=auth_failed" in log and "service=pop3 mech=password" in log
    assert "service=submission mech=PLAIN reason=bad_credentials" in log
    assert "failures=3" in log and "event=auth_blocked" in log
    assert "wrong1" not in log and "alicepw" not in log


def test_sessions_gone_mid_login(make_tern):
    """A client that leaves while its password is checked, or while the
    server waits for its next SASL line: nothing is answered to it, and
    the server goes on serving others."""
    t = make_tern(services=("smtp", "submission", "pop3"))
    # POP3 disconnects (the fixture's port probes log some too): every
    # POP3 session below must have ended, and let its mailbox lock go,
    # before the last login, which would otherwise get [IN-USE].
    pop3_gone = t.log().count(" retrieved=")
    for _ in range(3):
        # gone while the check runs
        s = socket.create_connection(("127.0.0.1", t.port("submission")), timeout=10)
        recv_reply(s)
        s.sendall(b"EHLO x\r\nAUTH PLAIN " + b64(f"\0{ALICE}\0alicepw").encode() + b"\r\n")
        s.close()
        s = socket.create_connection(("127.0.0.1", t.port("pop3")), timeout=10)
        s.recv(512)
        s.sendall(f"USER {ALICE}\r\nPASS alicepw\r\n".encode())
        s.close()
        # gone while the exchange waits for the client's next line
        d = Dialog(t.port("submission"))
        d.cmd("EHLO x")
        assert d.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6\r\n"
        d.sock.close()
        p = Pop(t)
        assert p.cmd("AUTH PLAIN") == b"+ "
        p.s.close()
    t.wait_log(" retrieved=", n=pop3_gone + 6)
    # everyone else still logs in
    d = Dialog(t.port("submission"))
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0alicepw")).startswith("235")
    p = Pop(t)
    msg = base64.b64encode(f"\0{ALICE}\0alicepw".encode()).decode()
    assert p.cmd(f"AUTH PLAIN {msg}").startswith(b"+OK Logged in")
    assert t.proc.poll() is None

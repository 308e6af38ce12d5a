"""POP3 (RFC 1939, 2449, 2595, 5034) against the real binary: the seeds'
telnet session byte for byte, APOP, AUTH, sizes, UIDL, DELE/RSET/QUIT,
dropped connections, [IN-USE], bad message numbers, pipelining, limits,
and real clients (curl, mpop, fetchmail).

Mail is delivered through tern's own SMTP port, so every message in these
tests took the real path: SMTP -> queue -> Maildir -> POP3.
"""
import base64
import hashlib
import hmac
import os
import poplib
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import TERN_BIN

ALICE = "alice@example.test"


def deliver(t, rcpt, bodies):
    """Send each body as one message to rcpt; wait until all are in new/."""
    before = len(t.messages(rcpt, "new")) + len(t.messages(rcpt, "cur"))
    with t.smtp() as c:
        for i, body in enumerate(bodies):
            c.sendmail("sender@remote.test", [rcpt], body)
    deadline = time.time() + 30
    while time.time() < deadline:
        if len(t.messages(rcpt, "new")) + len(t.messages(rcpt, "cur")) >= before + len(bodies):
            return
        time.sleep(0.05)
    raise AssertionError("delivery did not finish\n" + t.log()[-3000:])


def msg(i, extra=""):
    return f"From: sender@remote.test\r\nTo: {ALICE}\r\nSubject: message {i}\r\n\r\nbody of {i}\r\n{extra}"


def pop(t, service="pop3"):
    return poplib.POP3("127.0.0.1", t.port(service), timeout=10)


def login(t, user=ALICE, pw="alicepw"):
    p = pop(t)
    p.user(user)
    p.pass_(pw)
    return p


def crlf(data):
    """A Maildir file (LF ends) as POP3 sends it, before stuffing."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def stuffed(data):
    return re.sub(rb"(^|\r\n)\.", rb"\1..", crlf(data))


class Raw:
    """A raw POP3 connection: send lines, read replies."""

    def __init__(self, t, service="pop3"):
        self.s = socket.create_connection(("127.0.0.1", t.port(service)), timeout=10)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def multi(self):
        """A multi-line response after its status line, raw, with ".\\r\\n"."""
        out = b""
        while True:
            line = self.line()
            out += line
            if line == b".\r\n":
                return out

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def read_all(self, timeout=5):
        self.s.settimeout(timeout)
        data = self.buf
        self.buf = b""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        return data

    def close(self):
        self.s.close()


@pytest.fixture
def pt(make_tern):
    return make_tern(services=("smtp", "pop3"))


def files(t, addr=ALICE):
    md = t.maildir(addr)
    return {sub: sorted(os.listdir(os.path.join(md, sub))) for sub in ("new", "cur")}


# ---- the seeds' telnet session ---------------------------------------------------

def test_seed_session_byte_for_byte(pt):
    deliver(pt, ALICE, [msg(1), msg(2, ".leading dot\r\n")])
    raw = [open(os.path.join(pt.maildir(ALICE), "new", n), "rb").read() for n in files(pt)["new"]]
    sizes = [len(crlf(d)) for d in raw]
    r = Raw(pt)
    assert re.fullmatch(rb"\+OK tern POP3 server ready <[^<>@ ]+@mx\.test>\r\n", r.greeting)
    assert r.cmd(f"user {ALICE}") == b"+OK Send PASS\r\n"
    total = sum(sizes)
    assert r.cmd("pass alicepw") == f"+OK Logged in, 2 messages ({total} octets)\r\n".encode()
    assert r.cmd("stat") == f"+OK 2 {total}\r\n".encode()
    assert r.cmd("list") == f"+OK 2 messages ({total} octets)\r\n".encode()
    assert r.multi() == f"1 {sizes[0]}\r\n2 {sizes[1]}\r\n.\r\n".encode()
    for i in (1, 2):
        assert r.cmd(f"retr {i}") == f"+OK {sizes[i - 1]} octets\r\n".encode()
        assert r.multi() == stuffed(raw[i - 1]) + b".\r\n"
    assert b"..leading dot\r\n" in stuffed(raw[1])
    assert r.cmd("dele 1") == b"+OK Message 1 deleted\r\n"
    assert r.cmd("dele 2") == b"+OK Message 2 deleted\r\n"
    assert r.cmd("quit") == b"+OK mx.test POP3 server signing off (0 messages left)\r\n"
    assert r.read_all() == b""
    assert files(pt) == {"new": [], "cur": []}


def test_capa(pt):
    r = Raw(pt)
    assert r.cmd("CAPA") == b"+OK Capability list follows\r\n"
    caps = r.multi().decode().split("\r\n")
    for c in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER",
              "IMPLEMENTATION tern"):
        assert c in caps
    assert "SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256" in caps
    r.cmd(f"USER {ALICE}")
    r.cmd("PASS alicepw")
    assert r.cmd("capa") == b"+OK Capability list follows\r\n"
    caps = r.multi().decode().split("\r\n")
    assert "TOP" in caps and "USER" not in caps and not any(c.startswith("SASL") for c in caps)


# ---- authentication -----------------------------------------------------------------

def test_apop(pt):
    deliver(pt, ALICE, [msg(1)])
    r = Raw(pt)
    ts = re.search(rb"<[^>]+>", r.greeting).group(0)
    r2 = Raw(pt)
    assert re.search(rb"<[^>]+>", r2.greeting).group(0) != ts   # unique per connection
    digest = hashlib.md5(ts + b"alicepw").hexdigest()
    assert r.cmd(f"APOP {ALICE} {digest}").startswith(b"+OK Logged in, 1 messages")
    bad = hashlib.md5(ts + b"wrong").hexdigest()
    t0 = time.time()
    assert r2.cmd(f"APOP {ALICE} {bad}") == b"-ERR [AUTH] Authentication failed\r\n"
    assert time.time() - t0 >= 0.4
    # poplib's own APOP
    r.cmd("QUIT")
    p = pop(pt)
    p.apop(ALICE, "alicepw")
    assert p.stat()[0] == 1
    p.quit()


def test_auth_plain_and_cram_md5(pt):
    deliver(pt, ALICE, [msg(1)])
    ir = base64.b64encode(f"\0{ALICE}\0alicepw".encode()).decode()
    r = Raw(pt)
    assert r.cmd(f"AUTH PLAIN {ir}").startswith(b"+OK Logged in")
    r.cmd("QUIT")
    # without initial response: an empty challenge first
    r = Raw(pt)
    assert r.cmd("AUTH PLAIN") == b"+ \r\n"
    assert r.cmd(ir).startswith(b"+OK Logged in")
    r.cmd("QUIT")
    # CRAM-MD5 (RFC 2195)
    r = Raw(pt)
    ch = r.cmd("AUTH CRAM-MD5")
    assert ch.startswith(b"+ ")
    challenge = base64.b64decode(ch[2:].strip())
    assert re.fullmatch(rb"<[^>]+@mx\.test>", challenge)
    mac = hmac.new(b"alicepw", challenge, hashlib.md5).hexdigest()
    assert r.cmd(base64.b64encode(f"{ALICE} {mac}".encode()).decode()).startswith(b"+OK Logged in")
    r.cmd("QUIT")
    # a wrong password and a cancelled exchange
    r = Raw(pt)
    ch = r.cmd("AUTH CRAM-MD5")
    mac = hmac.new(b"nope", base64.b64decode(ch[2:].strip()), hashlib.md5).hexdigest()
    assert r.cmd(base64.b64encode(f"{ALICE} {mac}".encode()).decode()) == \
        b"-ERR [AUTH] Authentication failed\r\n"
    assert r.cmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6\r\n"
    assert r.cmd("*") == b"-ERR Authentication cancelled\r\n"
    assert r.cmd("AUTH KERBEROS_V4") == b"-ERR Unsupported authentication mechanism\r\n"
    assert r.cmd("AUTH") == b"+OK\r\n"
    assert r.multi() == b"PLAIN\r\nLOGIN\r\nCRAM-MD5\r\nSCRAM-SHA-256\r\n.\r\n"


def test_unknown_user_and_wrong_password_look_alike(pt):
    def attempt(user, pw):
        r = Raw(pt)
        a = r.cmd(f"USER {user}")
        t0 = time.time()
        b = r.cmd(f"PASS {pw}")
        return a, b, time.time() - t0
    a1, b1, d1 = attempt(ALICE, "Zq9secretZq9")
    a2, b2, d2 = attempt("nobody@example.test", "Zq9secretZq9")
    assert a1 == a2 == b"+OK Send PASS\r\n"
    assert b1 == b2 == b"-ERR [AUTH] Authentication failed\r\n"
    # the delay grows with failures from the address: 0.5 s, then 1 s
    assert 0.4 <= d1 < 0.9 and 0.9 <= d2 < 1.6
    assert "event=auth_failed" in pt.log()
    assert "Zq9secretZq9" not in pt.log()


def test_failures_block_address(make_tern):
    t = make_tern(services=("smtp", "pop3"), config={"auth": {"max_failures": "2"}})
    r = Raw(t)
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS x") == b"-ERR [AUTH] Authentication failed\r\n"
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS y") == b"-ERR [AUTH] Authentication failed\r\n"
    assert r.read_all() == b""       # closed after the limit
    r = Raw(t)
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS alicepw") == b"-ERR [AUTH] Too many failed logins from your address, try again later\r\n"


def test_plaintext_needs_tls_when_untrusted(make_tern):
    t = make_tern(services=("smtp", "pop3"), config={"relay": {"trusted_networks": "10.9.9.0/24"}})
    r = Raw(t)
    assert r.cmd(f"USER {ALICE}").startswith(b"-ERR [AUTH] Plaintext authentication disallowed")
    assert r.cmd("AUTH PLAIN").startswith(b"-ERR [AUTH] Plaintext authentication disallowed")
    assert r.cmd("CAPA").startswith(b"+OK")
    caps = r.multi().decode().split("\r\n")
    assert "USER" not in caps and "SASL CRAM-MD5 SCRAM-SHA-256" in caps
    # APOP and CRAM-MD5 never send the password: still allowed
    ts = re.search(rb"<[^>]+>", r.greeting).group(0)
    assert r.cmd(f"APOP {ALICE} {hashlib.md5(ts + b'alicepw').hexdigest()}").startswith(b"+OK")


def test_allow_plaintext_config(make_tern):
    t = make_tern(services=("smtp", "pop3"), config={"relay": {"trusted_networks": "10.9.9.0/24"},
                                                     "auth": {"allow_plaintext": "yes"}})
    p = login(t)
    assert p.stat() == (0, 0)
    p.quit()


def test_short_user_name_uses_first_domain(pt):
    deliver(pt, ALICE, [msg(1)])
    p = login(pt, "alice")
    assert p.stat()[0] == 1
    p.quit()


# ---- the mailbox ---------------------------------------------------------------------

def test_sizes_equal_retr_octets(pt):
    deliver(pt, ALICE, [msg(1), msg(2, ".a\r\n..b\r\nc.\r\n" * 50), msg(3, "x" * 900 + "\r\n")])
    p = login(pt)
    count, total = p.stat()
    listing = p.list()[1]
    assert count == 3 and len(listing) == 3
    got = 0
    for entry in listing:
        n, size = map(int, entry.split())
        _, lines, _ = p.retr(n)
        octets = sum(len(l) + 2 for l in lines)   # poplib un-stuffs; CRLF per line
        assert octets == size
        assert int(p.list(n).split()[2]) == size
        got += octets
    assert got == total
    p.quit()


def test_top(pt):
    deliver(pt, ALICE, [msg(1, "l2\r\nl3\r\n.l4\r\n")])
    p = login(pt)
    _, lines, _ = p.top(1, 0)
    assert lines[-1] == b"" and b"Subject: message 1" in lines and b"body of 1" not in lines
    _, lines, _ = p.top(1, 3)
    assert lines[-3:] == [b"body of 1", b"l2", b"l3"]
    _, lines, _ = p.top(1, 100)
    assert lines[-1] == b".l4"
    with pytest.raises(poplib.error_proto, match="Invalid number of lines"):
        p.top(1, -1)
    p.quit()
    # TOP does not mark the message as seen
    assert len(files(pt)["new"]) == 1


def test_uidl_stable_across_sessions(pt):
    deliver(pt, ALICE, [msg(1), msg(2)])
    p = login(pt)
    u1 = p.uidl()[1]
    assert p.uidl(2).split()[2] == u1[1].split()[1]
    p.retr(1)
    p.quit()
    # retrieved: moved to cur/ with the Seen flag, UIDL unchanged
    f = files(pt)
    assert len(f["new"]) == 1 and len(f["cur"]) == 1 and f["cur"][0].endswith(":2,S")
    p = login(pt)
    assert p.uidl()[1] == u1
    p.quit()
    ids = [l.split()[1] for l in u1]
    assert len(set(ids)) == 2
    for uid in ids:
        assert 1 <= len(uid) <= 70 and all(0x21 <= c <= 0x7e for c in uid)


def test_dele_rset_quit(pt):
    deliver(pt, ALICE, [msg(1), msg(2), msg(3)])
    p = login(pt)
    assert p.dele(2).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.dele(2)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(2)
    assert p.stat()[0] == 2
    assert [l.split()[0] for l in p.list()[1]] == [b"1", b"3"]
    assert p.rset().startswith(b"+OK 3 messages")
    assert p.stat()[0] == 3
    p.dele(1)
    p.dele(3)
    uid2 = p.uidl(2).split()[2]
    p.quit()
    p = login(pt)
    assert p.stat()[0] == 1
    assert p.uidl(1).split()[2] == uid2
    p.quit()


def test_quit_in_authorization_changes_nothing(pt):
    deliver(pt, ALICE, [msg(1)])
    r = Raw(pt)
    assert r.cmd("QUIT") == b"+OK mx.test POP3 server signing off\r\n"
    assert len(files(pt)["new"]) == 1


def test_dropped_connection_keeps_mail(pt):
    deliver(pt, ALICE, [msg(1), msg(2)])
    before = files(pt)
    r = Raw(pt)
    r.cmd(f"USER {ALICE}")
    r.cmd("PASS alicepw")
    r.cmd("DELE 1")
    r.cmd("RETR 2")
    r.multi()
    r.close()                        # no QUIT
    pt.wait_log(f"user={ALICE} retrieved=1 deleted=1 ")
    assert files(pt) == before
    p = login(pt)                    # and the lock went with the connection
    assert p.stat()[0] == 2
    p.quit()


def test_in_use(pt):
    deliver(pt, ALICE, [msg(1)])
    p = login(pt)
    r = Raw(pt)
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS alicepw") == b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
    # still in AUTHORIZATION: may try again once the other session left
    p.quit()
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS alicepw").startswith(b"+OK Logged in")
    # a killed server leaves no stale lock behind
    r.close()


def test_lock_survives_no_crash(pt):
    deliver(pt, ALICE, [msg(1)])
    r = Raw(pt)
    r.cmd(f"USER {ALICE}")
    r.cmd("PASS alicepw")
    pt.kill()
    pt.start()
    p = login(pt)
    assert p.stat()[0] == 1
    p.quit()


def test_bad_message_numbers(pt):
    deliver(pt, ALICE, [msg(1), msg(2)])
    r = Raw(pt)
    r.cmd(f"USER {ALICE}")
    r.cmd("PASS alicepw")
    for cmd in ("RETR", "LIST", "UIDL", "DELE", "TOP"):
        extra = " 1" if cmd == "TOP" else ""
        assert r.cmd(f"{cmd} 0{extra}") == b"-ERR No such message\r\n"
        assert r.cmd(f"{cmd} 3{extra}") == b"-ERR No such message\r\n"
        assert r.cmd(f"{cmd} 99999999999999999999999{extra}") == b"-ERR No such message\r\n"
        assert r.cmd(f"{cmd} -1{extra}") == b"-ERR Invalid message number\r\n"
        assert r.cmd(f"{cmd} one{extra}") == b"-ERR Invalid message number\r\n"
        # the error limit (10) must not end this test: reset it by reconnecting
        r.cmd("QUIT")
        r = Raw(pt)
        r.cmd(f"USER {ALICE}")
        r.cmd("PASS alicepw")
    assert r.cmd("RETR") == b"-ERR Syntax: RETR msg\r\n"
    assert r.cmd("TOP 1") == b"-ERR Syntax: TOP msg n\r\n"
    assert r.cmd("LIST 1 2") == b"-ERR Syntax: LIST [msg]\r\n"
    assert r.cmd("STAT").startswith(b"+OK 2 ")


def test_wrong_state_and_unknown(pt):
    r = Raw(pt)
    assert r.cmd("STAT") == b"-ERR STAT not allowed before login\r\n"
    assert r.cmd("PASS x") == b"-ERR Send USER first\r\n"
    assert r.cmd("XYZZY") == b"-ERR Unknown command\r\n"
    assert r.cmd("") == b"-ERR Empty command\r\n"
    r.cmd(f"USER {ALICE}")
    r.cmd("PASS alicepw")
    assert r.cmd("USER bob") == b"-ERR USER not allowed after login\r\n"
    assert r.cmd("NOOP") == b"+OK\r\n"


def test_pipelined_batch(pt):
    deliver(pt, ALICE, [msg(1), msg(2)])
    r = Raw(pt)
    r.send(f"CAPA\r\nUSER {ALICE}\r\nPASS alicepw\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 0\r\n"
           "DELE 1\r\nNOOP\r\nQUIT\r\n")
    assert r.line().startswith(b"+OK Capability")
    r.multi()
    assert r.line() == b"+OK Send PASS\r\n"
    assert r.line().startswith(b"+OK Logged in, 2 messages")
    assert r.line().startswith(b"+OK 2 ")
    assert r.line().startswith(b"+OK 2 messages")
    assert r.multi().count(b"\r\n") == 3
    assert r.line() == b"+OK Unique-ID listing follows\r\n"
    assert r.multi().count(b"\r\n") == 3
    assert r.line().startswith(b"+OK ") and b"body of 1" in r.multi()
    assert r.line() == b"+OK Top of message follows\r\n"
    assert b"body of 2" not in r.multi()
    assert r.line() == b"+OK Message 1 deleted\r\n"
    assert r.line() == b"+OK\r\n"
    assert r.line().startswith(b"+OK mx.test POP3 server signing off (1 messages left)")
    assert r.read_all() == b""


def test_big_pipelined_batch(pt):
    """Many RETRs in one write: no recursion, all replies in order."""
    deliver(pt, ALICE, [msg(i, "y" * 70 + "\r\n") for i in range(1, 6)])
    r = Raw(pt)
    r.cmd(f"USER {ALICE}")
    r.cmd("PASS alicepw")
    n = 3000
    r.send("".join(f"RETR {i % 5 + 1}\r\n" for i in range(n)) + "QUIT\r\n")
    for i in range(n):
        assert r.line().startswith(b"+OK ")
        assert f"body of {i % 5 + 1}".encode() in r.multi()
    assert r.line().startswith(b"+OK mx.test POP3 server signing off")


def test_line_limits_and_error_limit(pt):
    r = Raw(pt)
    assert r.cmd("NOOP " + "x" * 260) == b"-ERR Line too long\r\n"
    assert r.cmd("CAPA " + "x" * 240).startswith(b"+OK")       # 255 with CRLF is fine
    r.multi()
    for _ in range(8):
        assert r.cmd("BOGUS") == b"-ERR Unknown command\r\n"
    assert r.cmd("BOGUS") == b"-ERR Unknown command\r\n"
    assert r.line() == b"-ERR Too many errors, closing connection\r\n"
    assert r.read_all() == b""


def test_login_delay(make_tern):
    t = make_tern(services=("smtp", "pop3"), config={"pop3": {"login_delay": "60"}})
    r = Raw(t)
    assert r.cmd("CAPA").startswith(b"+OK")
    assert "LOGIN-DELAY 60" in r.multi().decode()
    p = login(t)
    p.quit()
    r.cmd(f"USER {ALICE}")
    assert r.cmd("PASS alicepw") == b"-ERR [LOGIN-DELAY] Minimum time between logins not yet reached\r\n"
    p = login(t, "bob@example.test", "bobpw")    # another user is not affected
    p.quit()


def test_foreign_mda_file_is_sized_once(pt):
    """Mail dropped by another MDA (no ,S=/,W=, LF ends, no final newline):
    sized on first login, renamed with the sizes, UIDL unchanged."""
    md = pt.maildir(ALICE)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    body = b"Subject: foreign\n\nline\n.dot\nlast line without newline"
    with open(os.path.join(md, "new", "1600000000.M1P1.other"), "wb") as f:
        f.write(body)
    with open(os.path.join(md, "cur", "1600000001.M2P2.other:2,S"), "wb") as f:
        f.write(b"Subject: seen\r\n\r\ncrlf already\r\n")
    p = login(pt)
    listing = [int(l.split()[1]) for l in p.list()[1]]
    uids = p.uidl()[1]
    assert uids == [b"1 1600000000.M1P1.other", b"2 1600000001.M2P2.other"]
    _, lines, _ = p.retr(1)
    assert lines == [b"Subject: foreign", b"", b"line", b".dot", b"last line without newline"]
    assert listing[0] == sum(len(l) + 2 for l in lines)
    _, lines, _ = p.retr(2)
    assert listing[1] == sum(len(l) + 2 for l in lines) == 31
    p.quit()
    f = files(pt)
    assert f["new"] == []
    w = len(body) + body.count(b"\n") + 2      # LF -> CRLF, plus the missing final CRLF
    assert f"1600000000.M1P1.other,S={len(body)},W={w}:2,S" in f["cur"]
    assert "1600000001.M2P2.other,S=31,W=31:2,S" in f["cur"]
    p = login(pt)
    assert p.uidl()[1] == uids
    p.quit()


def test_large_message_streams(pt):
    """A multi-megabyte message goes out whole and in CRLF form."""
    line = "0123456789" * 7 + "\r\n"
    big = msg(1, line * 40000)          # ~2.9 MB
    deliver(pt, ALICE, [big])
    p = login(pt)
    size = int(p.list(1).split()[2])
    _, lines, octets = p.retr(1)
    assert sum(len(l) + 2 for l in lines) == size > 2_800_000
    assert lines.count(line.strip().encode()) == 40000
    p.quit()


def raw_retr(r, n, command=None):
    """RETR n (or command: TOP) over a Raw connection: the octets between
    the +OK line and the final ".CRLF", as sent (stuffed, CRLF)."""
    r.send(f"{command or f'RETR {n}'}\r\n")
    assert r.line().startswith(b"+OK")
    while not r.buf.endswith(b"\r\n.\r\n") and r.buf != b".\r\n":
        chunk = r.s.recv(65536)
        if not chunk:
            raise EOFError(r.buf)
        r.buf += chunk
    body, r.buf = r.buf[:-3], b""
    return body


def chunk_files(t):
    """Maildir files around the 64 KiB read chunk (a short read ends the
    message, a full one reads on), with dot lines, no final newline, and
    a CRLF or a dot line split by the chunk boundary; returns their
    contents in arrival order."""
    md = t.maildir(ALICE)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    bodies = []
    for size in [1, 65535, 65536, 65537, 131072, 131073]:
        head = b"Subject: chunk\n\n"
        line = b".dot line\n"
        body = head + line * ((size - len(head)) // len(line))
        body += b"y" * (size - len(body))
        bodies.append(body[:size])
    head = b"Subject: cr\r\n\r\n"                 # CR|LF across the boundary
    bodies.append(head + b"a" * (65535 - len(head)) + b"\r\n.after\r\n")
    head = b"Subject: dot\n\n"                    # LF|dot across it
    bodies.append(head + b"a" * (65535 - len(head)) + b"\n.dot at the chunk\n..\n.")
    assert bodies[-2][65535:65537] == b"\r\n" and bodies[-1][65535:65537] == b"\n."
    for i, body in enumerate(bodies):
        with open(os.path.join(md, "new", f"16000000{i:02d}.M{i}P1.other"), "wb") as f:
            f.write(body)
    return bodies


def check_chunk_files(p, bodies):
    """RETR each of chunk_files()' messages raw on poplib session p."""
    p.stat()
    r = Raw.__new__(Raw)
    r.s, r.buf = p.sock, b""
    for i, body in enumerate(bodies):
        want = stuffed(body)
        if not want.endswith(b"\r\n"):
            want += b"\r\n"
        assert raw_retr(r, i + 1) == want, f"message {i + 1} of {len(body)} octets"


def test_retr_around_the_read_chunk(pt):
    """Messages around the read chunk go out whole, stuffed, with one end."""
    bodies = chunk_files(pt)
    p = login(pt)
    check_chunk_files(p, bodies)
    p.quit()


def test_pop3s_retr_and_top_around_the_read_chunk(tls_t):
    """The same over TLS (output through the OpenSSL bufferevent, not
    written directly), and TOP there."""
    bodies = chunk_files(tls_t)
    p = poplib.POP3_SSL("127.0.0.1", tls_t.port("pop3s"), context=insecure_ctx(), timeout=10)
    p.user(ALICE)
    p.pass_("alicepw")
    check_chunk_files(p, bodies)
    r = Raw.__new__(Raw)
    r.s, r.buf = p.sock, b""
    assert raw_retr(r, 3, "TOP 3 2") == b"Subject: chunk\r\n\r\n..dot line\r\n..dot line\r\n"
    head = b"Subject: dot\r\n\r\n"
    assert raw_retr(r, 8, "TOP 8 1") == head + b"a" * (65535 - len(b"Subject: dot\n\n")) + b"\r\n"
    assert raw_retr(r, 8, "TOP 8 2") == (head + b"a" * (65535 - len(b"Subject: dot\n\n")) +
                                         b"\r\n..dot at the chunk\r\n")
    assert raw_retr(r, 1, "TOP 1 0") == b"S\r\n"
    p.quit()


def minor_faults(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])   # field 10, minflt


def test_pipelined_big_retrs_do_not_fault_per_message(pt):
    """40 RETRs of 100 KiB pipelined keep ~256 KiB of output queued all
    along; the heap must not give that back and fault it in again for
    every message (glibc's default trim threshold did: ~19 page faults
    and a brk() per message)."""
    with open(TERN_BIN, "rb") as f:
        if b"__asan_init" in f.read():
            pytest.skip("ASan's allocator is not glibc's: its heap policy is its own")
    md = pt.maildir(ALICE)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    body = b"Subject: big\n\n" + (b"z" * 71 + b"\n") * 1420
    n = 40
    for i in range(n):
        with open(os.path.join(md, "new", f"17000000{i:02d}.M{i}P1.other"), "wb") as f:
            f.write(body)
    p = login(pt)
    assert p.stat()[0] == n
    want = n * (len(f"+OK {len(crlf(body))} octets\r\n") + len(stuffed(body)) + 3)
    for _ in range(2):                   # the first round may grow the heap
        before = minor_faults(pt.proc.pid)
        p.sock.sendall(b"".join(b"RETR %d\r\n" % (i + 1) for i in range(n)))
        got = 0
        while got < want:
            chunk = p.sock.recv(1 << 20)
            assert chunk
            got += len(chunk)
        faults = minor_faults(pt.proc.pid) - before
    assert faults < n, faults
    p.quit()


def test_pipelined_big_retrs_leave_in_few_writes(pt):
    """Output the socket did not take at once goes out as the socket
    drains, up to 256 KiB a write (libevent's default, 16 KiB, took
    seven writes for each 100 KiB message)."""
    md = pt.maildir(ALICE)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    body = b"Subject: big\n\n" + (b"w" * 71 + b"\n") * 1420
    n = 20
    for i in range(n):
        with open(os.path.join(md, "new", f"17100000{i:02d}.M{i}P1.other"), "wb") as f:
            f.write(body)
    p = login(pt)
    assert p.stat()[0] == n
    want = n * (len(f"+OK {len(crlf(body))} octets\r\n") + len(stuffed(body)) + 3)
    trace = os.path.join(pt.state, "..", "writes.strace")
    st = subprocess.Popen(["strace", "-f", "-qq", "-yy", "-e", "trace=write,writev,sendmsg", "-o", trace,
                           "-p", str(pt.proc.pid)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:    # attached once the loop thread is traced
            with open(f"/proc/{pt.proc.pid}/status") as f:
                if re.search(r"^TracerPid:\s*[1-9]", f.read(), re.M):
                    break
            time.sleep(0.02)
        else:
            pytest.skip("strace could not attach")
        p.sock.sendall(b"".join(b"RETR %d\r\n" % (i + 1) for i in range(n)))
        got = 0
        while got < want:
            chunk = p.sock.recv(1 << 16)     # a slow reader: the socket fills
            assert chunk
            got += len(chunk)
        p.noop()
    finally:
        st.terminate()
        st.wait(10)
    port = p.sock.getsockname()[1]
    writes = re.findall(rf"(?:write|writev|sendmsg)\(\d+<TCP:\[[^\]]*->127\.0\.0\.1:{port}\]>", open(trace).read())
    assert 0 < len(writes) <= 3 * n, len(writes)
    p.quit()


def trace_one_retr(pt, p, calls):
    """RETR 1 (then NOOP) on session p while strace -yy records calls on
    tern; returns (the RETR's lines, strace's text)."""
    trace = os.path.join(pt.state, "..", "retr.strace")
    st = subprocess.Popen(["strace", "-f", "-qq", "-yy", "-e", f"trace={calls}", "-o", trace,
                           "-p", str(pt.proc.pid)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:    # attached once the loop thread is traced
            with open(f"/proc/{pt.proc.pid}/status") as f:
                if re.search(r"^TracerPid:\s*[1-9]", f.read(), re.M):
                    break
            time.sleep(0.02)
        else:
            pytest.skip("strace could not attach")
        _, lines, _ = p.retr(1)
        p.noop()
    finally:
        st.terminate()
        st.wait(10)
    return lines, open(trace).read()


# openat(DIRFD</.../new>, "NAME", O_RDONLY...) = FD</.../new/NAME>: the
# message file, opened relative to the Maildir's new/ (one name looked up)
MSG_OPEN = r'openat\(\d+<[^>]*/new>, "[^"/]*", O_RDONLY[^)]*\) = (\d+)<'


def test_retr_reads_a_small_file_once(pt):
    """A message shorter than the read chunk costs one read() of its file:
    the short read is its end, not a second read() returning 0."""
    deliver(pt, ALICE, [msg(1, ("x" * 60 + "\r\n") * 50)])
    p = login(pt)
    p.stat()
    lines, text = trace_one_retr(pt, p, "openat,read,close")
    assert lines[-50:] == [b"x" * 60] * 50
    m = re.search(MSG_OPEN, text)
    assert m, text[-2000:]
    fd = m.group(1)
    reads = re.findall(rf"read\({fd}<[^>]*>, .*\)\s+=\s+(-?\d+)", text[m.end():text.find(f"close({fd}<", m.end())])
    assert reads and int(reads[0]) > 3000 and len(reads) == 1, reads
    p.quit()


def test_retr_reply_leaves_before_the_file_closes(pt):
    """A client waiting for its message gets it before tern closes the
    file (the close is off the round trip): the socket write carrying the
    message comes before close() of the message file."""
    deliver(pt, ALICE, [msg(1, ("y" * 60 + "\r\n") * 20)])
    p = login(pt)
    p.stat()
    lines, text = trace_one_retr(pt, p, "openat,close,write,writev,sendmsg")
    assert lines[-20:] == [b"y" * 60] * 20
    m = re.search(MSG_OPEN, text)
    assert m, text[-2000:]
    fd = m.group(1)
    rest = text[m.end():]
    close_at = rest.find(f"close({fd}<")
    sent = re.search(r'(write|writev|sendmsg)\(\d+<TCP:\[[^\]]*\]>, [^"]*"\+OK \d+ octets', rest)
    assert close_at >= 0 and sent, rest[:3000]
    assert sent.start() < close_at, rest[:3000]
    p.quit()


def test_shutdown_closes_sessions(pt):
    deliver(pt, ALICE, [msg(1)])
    r = Raw(pt)
    r.cmd(f"USER {ALICE}")
    r.cmd("PASS alicepw")
    assert pt.stop() == 0
    assert r.read_all() == b"-ERR [SYS/TEMP] Server shutting down, try again later\r\n"


# ---- real clients -----------------------------------------------------------------------

def test_curl(pt):
    deliver(pt, ALICE, [msg(1), msg(2)])
    url = f"pop3://127.0.0.1:{pt.port('pop3')}"
    out = subprocess.run(["curl", "-s", "--user", f"{ALICE}:alicepw", url + "/"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split("\r\n")[:2] == [l.decode() for l in login_list(pt)]
    out = subprocess.run(["curl", "-s", "--user", f"{ALICE}:alicepw", url + "/2"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and b"body of 2" in out.stdout


def login_list(t):
    p = login(t)
    listing = p.list()[1]
    p.quit()
    return listing


def test_mpop_retrieves_everything(pt, tmp_path):
    deliver(pt, ALICE, [msg(i, ".dot\r\n") for i in range(1, 6)])
    out = tmp_path / "mpop-out"
    for sub in ("new", "cur", "tmp"):
        os.makedirs(out / sub)
    rc = tmp_path / "mpoprc"
    rc.write_text(f"""account default
host 127.0.0.1
port {pt.port('pop3')}
user {ALICE}
password alicepw
auth user
tls off
delivery maildir {out}
keep off
uidls_file {tmp_path}/uidls
""")
    os.chmod(rc, 0o600)
    r = subprocess.run(["mpop", "-C", str(rc), "-a", "-q"], capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(os.listdir(out / "new"))
    assert len(got) == 5
    texts = [open(out / "new" / n, "rb").read() for n in got]
    assert all(b"\n.dot\n" in t or b"\r\n.dot\r\n" in t for t in texts)
    assert files(pt) == {"new": [], "cur": []}


def test_fetchmail_retrieves_everything(pt, tmp_path):
    deliver(pt, ALICE, [msg(i) for i in range(1, 4)])
    sink = tmp_path / "fetched"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f"""poll 127.0.0.1 service {pt.port('pop3')} protocol pop3 auth password
  user "{ALICE}" password "alicepw" is "me" here
  mda "/bin/sh -c 'cat >> {sink}'"
  sslproto '' no sslcertck
""")
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v"],
                       capture_output=True, timeout=60, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    data = sink.read_bytes()
    for i in range(1, 4):
        assert f"body of {i}".encode() in data
    assert files(pt) == {"new": [], "cur": []}


def test_many_untagged_files_counted_once(pt):
    """Tagging renames files; the snapshot must still see each message once."""
    md = pt.maildir(ALICE)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    for i in range(500):
        with open(os.path.join(md, "new", f"1600000000.M{i:06d}P1.other"), "wb") as f:
            f.write(f"Subject: {i}\n\nbody {i}\n".encode())
    p = login(pt)
    assert p.stat()[0] == 500
    assert len(set(l.split()[1] for l in p.uidl()[1])) == 500
    p.quit()
    assert len(files(pt)["new"]) == 500
    p = login(pt)
    assert p.stat()[0] == 500
    p.quit()


def test_idle_timeout(make_tern):
    t = make_tern(services=("smtp", "pop3"), config={"pop3": {"timeout": "1s"}})
    deliver(t, ALICE, [msg(1)])
    r = Raw(t)
    r.cmd(f"USER {ALICE}")
    r.cmd("PASS alicepw")
    r.cmd("DELE 1")
    t0 = time.time()
    assert r.read_all(timeout=5) == b"-ERR Autologout; idle for too long\r\n"
    assert 0.9 <= time.time() - t0 < 4
    assert len(files(t)["new"]) == 1          # no UPDATE on autologout
# ---- TLS: STLS (RFC 2595) and POP3S ------------------------------------------------------

import ssl  # noqa: E402


def insecure_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def tls_t(make_tern):
    """Plaintext refused (the client is not trusted): TLS is required."""
    return make_tern(services=("smtp", "pop3", "pop3s"),
                     config={"relay": {"trusted_networks": "10.9.9.0/24"}})


def test_stls_then_user_pass(tls_t):
    deliver(tls_t, ALICE, [msg(1)])
    p = pop(tls_t)
    caps = p.capa()
    assert "STLS" in caps and "USER" not in caps
    with pytest.raises(poplib.error_proto, match="Plaintext authentication disallowed"):
        p.user(ALICE)
    p.stls(insecure_ctx())
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps and "PLAIN" in caps["SASL"]
    p.user(ALICE)
    p.pass_("alicepw")
    assert p.stat()[0] == 1
    p.quit()
    assert re.search(r"event=login .* tls=yes", tls_t.log())
    assert "event=tls " in tls_t.log()


def test_stls_discards_pipelined_input(tls_t):
    r = Raw(tls_t)
    r.send(f"STLS\r\nUSER {ALICE}\r\nCAPA\r\n")
    assert r.line() == b"+OK Begin TLS negotiation\r\n"
    assert r.buf == b""
    s = insecure_ctx().wrap_socket(r.s, server_hostname="mx.test")
    s.settimeout(2)
    # neither the USER nor the CAPA was answered, and USER was forgotten
    s.sendall(b"PASS alicepw\r\n")
    assert s.recv(1000) == b"-ERR Send USER first\r\n"
    s.sendall(b"STLS\r\n")
    assert s.recv(1000) == b"-ERR Already using TLS\r\n"
    s.close()


def test_stls_with_an_argument_is_refused(tls_t):
    """RFC 2595 4: STLS has no argument; one with an argument does not
    start TLS (the session stays in the clear and STLS still works)."""
    r = Raw(tls_t)
    r.send("STLS now\r\n")
    assert r.line() == b"-ERR STLS takes no argument\r\n"
    r.send("STLS\r\n")
    assert r.line() == b"+OK Begin TLS negotiation\r\n"
    s = insecure_ctx().wrap_socket(r.s, server_hostname="mx.test")
    s.settimeout(5)
    s.sendall(b"STLS\r\n")
    assert s.recv(1000) == b"-ERR Already using TLS\r\n"
    s.close()


def test_pop3_ssl(tls_t):
    deliver(tls_t, ALICE, [msg(1), msg(2)])
    p = poplib.POP3_SSL("127.0.0.1", tls_t.port("pop3s"), context=insecure_ctx(), timeout=10)
    assert p.getwelcome().startswith(b"+OK tern POP3 server ready <")
    assert "STLS" not in p.capa()
    p.user(ALICE)
    p.pass_("alicepw")
    assert p.stat()[0] == 2
    _, lines, _ = p.retr(2)
    assert b"body of 2" in lines
    p.dele(1)
    p.quit()
    p = poplib.POP3_SSL("127.0.0.1", tls_t.port("pop3s"), context=insecure_ctx(), timeout=10)
    ir = base64.b64encode(f"\0{ALICE}\0alicepw".encode()).decode()
    assert p._shortcmd(f"AUTH PLAIN {ir}").startswith(b"+OK Logged in, 1 messages")
    p.quit()


def test_pop3s_handshake_failure_is_harmless(tls_t):
    s = socket.create_connection(("127.0.0.1", tls_t.port("pop3s")), timeout=5)
    s.sendall(b"USER alice\r\n")        # not a TLS ClientHello
    s.settimeout(5)
    try:
        data = s.recv(1000)
    except ConnectionResetError:
        data = b""
    assert not data.startswith(b"+OK")
    s.close()
    p = poplib.POP3_SSL("127.0.0.1", tls_t.port("pop3s"), context=insecure_ctx(), timeout=10)
    p.quit()


def test_curl_pop3s_and_stls(tls_t):
    deliver(tls_t, ALICE, [msg(1)])
    out = subprocess.run(["curl", "-s", "-k", "--user", f"{ALICE}:alicepw",
                          f"pop3s://127.0.0.1:{tls_t.port('pop3s')}/1"], capture_output=True, timeout=30)
    assert out.returncode == 0 and b"body of 1" in out.stdout, out.stderr
    out = subprocess.run(["curl", "-s", "-k", "--ssl-reqd", "--user", f"{ALICE}:alicepw",
                          f"pop3://127.0.0.1:{tls_t.port('pop3')}/1"], capture_output=True, timeout=30)
    assert out.returncode == 0 and b"body of 1" in out.stdout, out.stderr


def test_mpop_over_stls(tls_t, tmp_path):
    deliver(tls_t, ALICE, [msg(i) for i in range(1, 4)])
    out = tmp_path / "mpop-out"
    for sub in ("new", "cur", "tmp"):
        os.makedirs(out / sub)
    rc = tmp_path / "mpoprc"
    rc.write_text(f"""account default
host 127.0.0.1
port {tls_t.port('pop3')}
user {ALICE}
password alicepw
tls on
tls_starttls on
tls_certcheck off
delivery maildir {out}
keep off
uidls_file {tmp_path}/uidls
""")
    os.chmod(rc, 0o600)
    r = subprocess.run(["mpop", "-C", str(rc), "-a", "-q"], capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(os.listdir(out / "new")) == 3
    assert files(tls_t) == {"new": [], "cur": []}


def test_pop3s_error_limit_reply_then_linger(tls_t):
    """Over TLS too the fatal -ERR arrives whole, then EOF, and the
    session ends when the client closes (the linger reads the socket
    under the TLS layer)."""
    s = insecure_ctx().wrap_socket(socket.create_connection(("127.0.0.1", tls_t.port("pop3s")), timeout=10))
    assert s.recv(512).startswith(b"+OK")
    s.sendall(b"JUNK\r\n" * 20)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ssl.SSLEOFError:          # tern shut its side without close_notify
            break
        if not chunk:
            break
        data += chunk
    assert data.endswith(b"-ERR Too many errors, closing connection\r\n"), data
    s.close()
    m = tls_t.wait_for_log(r"event=linger session=\S+ ip=\S+ end=(\w+)")
    assert m.group(1) == "eof", m.group(0)

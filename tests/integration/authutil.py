"""Helpers for the submission, TLS and AUTH tests: a client-side
SCRAM-SHA-256 (RFC 5802, RFC 7677) for smtplib, TLS contexts that accept
tern's self-signed certificate, and raw-socket dialogs."""
import base64
import hashlib
import hmac
import os
import socket
import ssl

from conftest import recv_reply


def client_tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


class Scram:
    """An smtplib authobject: SMTP.auth("SCRAM-SHA-256", Scram(user, pw))."""

    def __init__(self, user, password):
        self.user, self.password = user, password.encode()
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.bare = f"n={user},r={self.cnonce}"
        self.step = 0
        self.server_ok = False

    def __call__(self, challenge=None):
        self.step += 1
        if challenge is None:
            return "n,," + self.bare
        text = challenge.decode()
        if text.startswith("v="):
            assert hmac.compare_digest(text[2:], self.expected_v), "bad server signature"
            self.server_ok = True
            return ""
        attrs = dict(kv.split("=", 1) for kv in text.split(","))
        assert attrs["r"].startswith(self.cnonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        ck = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored = hashlib.sha256(ck).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_msg = f"{self.bare},{text},{without_proof}".encode()
        sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(ck, sig))
        sk = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.expected_v = base64.b64encode(hmac.new(sk, auth_msg, hashlib.sha256).digest()).decode()
        return f"{without_proof},p={base64.b64encode(proof).decode()}"


def cram_md5(user, password, challenge_b64):
    ch = base64.b64decode(challenge_b64)
    return b64(user + " " + hmac.new(password.encode(), ch, hashlib.md5).hexdigest())


class Dialog:
    """A raw SMTP dialog over a socket (optionally upgraded to TLS)."""

    def __init__(self, port, tls=False, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = client_tls().wrap_socket(self.sock)
        self.greeting = recv_reply(self.sock)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return recv_reply(self.sock)

    def starttls(self):
        r = self.cmd("STARTTLS")
        assert r.startswith("220 "), r
        self.sock = client_tls().wrap_socket(self.sock)
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def submission_data(t, frm="alice@example.test", rcpt="bob@example.test", user="alice@example.test",
                    password="alicepw"):
    """A dialog on t's submission port (587: STARTTLS, AUTH PLAIN as
    user) that has had MAIL, RCPT and DATA accepted: the message's text
    is the caller's to send."""
    d = Dialog(t.port("submission"))
    d.cmd("EHLO client.test")
    d.starttls()
    d.cmd("EHLO client.test")
    assert d.cmd("AUTH PLAIN " + b64(f"\0{user}\0{password}")).startswith("235")
    assert d.cmd(f"MAIL FROM:<{frm}>").startswith("250")
    assert d.cmd(f"RCPT TO:<{rcpt}>").startswith("250")
    assert d.cmd("DATA").startswith("354")
    return d

"""Outbound delivery: MX routing through a local dnsmasq, the SMTP client
against scripted receivers on 127.0.0.x, retries, bounces as DSNs.

Each fake MX host is a small threaded SMTP server on its own loopback
address at one common port ([delivery] remote_port); dnsmasq serves the
MX, A and CNAME records.
"""
import email
import email.policy
import os
import socket
import subprocess
import threading

import pytest

from conftest import Dnsmasq, free_port, wait_for  # noqa: F401 (wait_for: other tests take it from here)

class Receiver:
    """A scripted SMTP server on (ip, port).  Records every connection's
    raw input chunks and every accepted message."""

    def __init__(self, ip, port, ext=("PIPELINING", "8BITMIME", "SIZE 10000000"), ehlo="250",
                 rcpt=None, mail="250 2.1.0 ok", data="354 go on", final="250 2.0.0 queued",
                 greeting="220 fake ESMTP", name="fake", starttls="502 5.5.2 not implemented"):
        self.ip, self.port = ip, port
        # The reply to STARTTLS; a 220 is followed by bytes that are not
        # TLS and the connection is closed (a broken handshake).
        self.starttls = starttls
        self.ext, self.ehlo, self.rcpt = list(ext), ehlo, rcpt or {}
        self.mail, self.data, self.final, self.greeting, self.name = mail, data, final, greeting, name
        self.messages, self.chunks, self.connections, self.transcripts = [], [], 0, []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(50)
        self.stopped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def stop(self):
        self.stopped = True
        # close() alone leaves the socket listening while serve() is
        # blocked in accept() on it: a later test's tern could connect to
        # this stopped receiver.  shutdown() ends the accept().
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def session(self, c):
        c.settimeout(20)
        buf = b""
        lines = []
        self.transcripts.append(lines)

        def send(s):
            c.sendall(s.encode() + b"\r\n")

        def readline():
            nonlocal buf
            while b"\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    raise EOFError
                self.chunks.append(d)
                buf += d
            line, buf = buf.split(b"\r\n", 1)
            lines.append(line.decode("latin-1"))
            return line.decode("latin-1")

        try:
            send(self.greeting)
            if not self.greeting.startswith("2"):
                readline()
                return
            env = None
            while True:
                line = readline()
                verb = line[:4].upper()
                if verb == "EHLO":
                    if self.ehlo != "250":
                        send(self.ehlo)
                        continue
                    send(f"250-{self.name} hello")
                    for e in self.ext:
                        send(f"250-{e}")
                    send("250 HELP")
                elif verb == "HELO":
                    send(f"250 {self.name}")
                elif verb == "MAIL":
                    env = {"from": line, "rcpts": [], "ok": []}
                    send(self.mail)
                    if not self.mail.startswith("2"):
                        env = None
                elif verb == "RCPT":
                    addr = line.split("<", 1)[1].split(">", 1)[0]
                    r = self.rcpt.get(addr, "250 2.1.5 ok")
                    if env is not None:
                        env["rcpts"].append(line)
                        if r.startswith("2"):
                            env["ok"].append(addr)
                    send(r if env is not None else "503 5.5.1 no MAIL")
                elif verb == "DATA":
                    if env is None or not env["ok"]:
                        send("554 5.5.1 no valid recipients")
                        continue
                    send(self.data)
                    if not self.data.startswith("3"):
                        continue
                    body = b""
                    while True:
                        while b"\r\n" not in buf:
                            d = c.recv(65536)
                            if not d:
                                raise EOFError
                            self.chunks.append(d)
                            buf += d
                        line_b, buf = buf.split(b"\r\n", 1)
                        if line_b == b".":
                            break
                        if line_b.startswith(b"."):
                            line_b = line_b[1:]
                        body += line_b + b"\r\n"
                    env["data"] = body
                    if self.final.startswith("2"):
                        self.messages.append(env)
                    send(self.final)
                    env = None
                elif verb == "RSET":
                    env = None
                    send("250 ok")
                elif verb == "QUIT":
                    send("221 bye")
                    return
                elif verb == "NOOP":
                    send("250 ok")
                elif line.upper() == "STARTTLS":
                    send(self.starttls)
                    if self.starttls.startswith("220"):
                        c.sendall(b"this is not a TLS record\r\n" * 4)
                        return
                else:
                    send("502 5.5.2 not implemented")
        except (EOFError, OSError):
            pass
        finally:
            c.close()


@pytest.fixture
def net(make_tern):
    """dnsmasq with the test zones, a common MX port, and a tern factory."""
    state = {"dns": None, "receivers": []}
    port = free_port()

    def dns(*args):
        # --local: answer for the test zones here, never forward.
        state["dns"] = Dnsmasq(["--local=/test/"] + list(args))
        return state["dns"]

    def receiver(ip, **kw):
        r = Receiver(ip, port, **kw)
        state["receivers"].append(r)
        return r

    def tern(config=None, **kw):
        cfg = {"dns": {"servers": f"127.0.0.1:{state['dns'].port}"},
               "delivery": {"remote_port": str(port), "reuse_idle": "2s", "client_timeout": "5s"},
               "queue": {"retry": "2s", "max_age": "1h"}}
        for sec, kv in (config or {}).items():
            cfg.setdefault(sec, {}).update(kv)
        return make_tern(config=cfg, **kw)

    class N:
        pass
    n = N()
    n.dns, n.receiver, n.tern, n.port = dns, receiver, tern, port
    yield n
    for r in state["receivers"]:
        r.stop()
    if state["dns"]:
        state["dns"].stop()


def send(t, rcpts, sender="alice@example.test", body="Subject: test\r\n\r\nhello\r\n", **kw):
    with t.smtp() as c:
        c.sendmail(sender, rcpts, body.encode("utf-8") if isinstance(body, str) else body, **kw)


def dsns(t, addr="alice@example.test", n=1, timeout=30):
    msgs = t.wait_messages(addr, n, timeout=timeout)
    return [email.message_from_bytes(m, policy=email.policy.default) for m in msgs]


def status_fields(msg):
    """The per-recipient groups of the message/delivery-status part."""
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return [dict(g.items()) for g in part.get_payload()[1:]]
    raise AssertionError("no message/delivery-status part")


# ---- routing ------------------------------------------------------------------

def test_mx_preference_order(net):
    net.dns("--mx-host=pref.test,mx1.pref.test,10", "--mx-host=pref.test,mx2.pref.test,20",
            "--host-record=mx1.pref.test,127.0.0.11", "--host-record=mx2.pref.test,127.0.0.12")
    a = net.receiver("127.0.0.11", name="mx1")
    b = net.receiver("127.0.0.12", name="mx2")
    t = net.tern()
    send(t, ["bob@pref.test"])
    wait_for(lambda: len(a.messages) == 1, t=t)
    # the receiver has the message before tern reads its 250: wait for
    # the delivery's log line rather than race it
    t.wait_log("status=sent")
    assert b.messages == []
    assert "relay=mx1.pref.test[127.0.0.11]" in t.log()


def test_fallback_to_next_mx(net):
    net.dns("--mx-host=fb.test,mx1.fb.test,10", "--mx-host=fb.test,mx2.fb.test,20",
            "--host-record=mx1.fb.test,127.0.0.21", "--host-record=mx2.fb.test,127.0.0.22")
    b = net.receiver("127.0.0.22")          # nothing listens on .21
    t = net.tern()
    send(t, ["bob@fb.test"])
    wait_for(lambda: len(b.messages) == 1, t=t)


def test_fallback_to_next_address_of_host(net):
    net.dns("--mx-host=addr.test,mx.addr.test,10", "--host-record=mx.addr.test,127.0.0.31",
            "--host-record=mx.addr.test,127.0.0.32")
    b = net.receiver("127.0.0.32", greeting="220 second")
    a = net.receiver("127.0.0.31", greeting="421 4.3.2 busy")
    t = net.tern()
    send(t, ["bob@addr.test"])
    wait_for(lambda: len(b.messages) == 1, t=t)
    assert a.messages == []


def test_implicit_mx_and_cname(net):
    net.dns("--host-record=plain.test,127.0.0.41", "--cname=alias.test,real.test",
            "--host-record=real.test,127.0.0.42")
    a = net.receiver("127.0.0.41")
    b = net.receiver("127.0.0.42")
    t = net.tern()
    send(t, ["x@plain.test"])
    send(t, ["y@alias.test"])
    wait_for(lambda: len(a.messages) == 1 and len(b.messages) == 1, t=t)


def test_equal_preference_spread(net):
    net.dns("--mx-host=eq.test,mxa.eq.test,10", "--mx-host=eq.test,mxb.eq.test,10",
            "--host-record=mxa.eq.test,127.0.0.51", "--host-record=mxb.eq.test,127.0.0.52")
    a = net.receiver("127.0.0.51")
    b = net.receiver("127.0.0.52")
    t = net.tern(config={"delivery": {"reuse_idle": "0"}})
    for i in range(16):
        send(t, [f"u{i}@eq.test"])
    wait_for(lambda: len(a.messages) + len(b.messages) == 16, t=t)
    assert a.messages and b.messages


def test_null_mx_bounces_556(net):
    net.dns("--mx-host=null.test,.,0")
    t = net.tern()
    send(t, ["bob@null.test"])
    (d,) = dsns(t)
    f = status_fields(d)[0]
    assert f["Action"] == "failed" and f["Status"] == "5.1.10"
    assert "556" in f["Diagnostic-Code"]


# ---- results ----------------------------------------------------------------

def test_5xx_bounce_is_a_proper_dsn(net):
    net.dns("--mx-host=rej.test,mx.rej.test,10", "--host-record=mx.rej.test,127.0.0.61")
    r = net.receiver("127.0.0.61", rcpt={"nobody@rej.test": "550 5.1.1 no such user"})
    t = net.tern()
    send(t, ["nobody@rej.test", "ok@rej.test"],
         body="From: alice@example.test\r\nSubject: hi there\r\nMessage-ID: <m1@x>\r\n\r\nbody\r\n")
    (d,) = dsns(t)
    assert d["From"].addresses[0].username == "MAILER-DAEMON"
    assert d.get_content_type() == "multipart/report"
    assert d.get_param("report-type") == "delivery-status"
    groups = status_fields(d)
    assert len(groups) == 1
    assert groups[0]["Final-Recipient"] == "rfc822; nobody@rej.test"
    assert groups[0]["Status"] == "5.1.1" and groups[0]["Action"] == "failed"
    assert groups[0]["Remote-MTA"] == "dns; mx.rej.test"
    raw = t.messages("alice@example.test")[0]
    assert b"Return-Path: <>" in raw
    assert b"Subject: hi there" in raw           # the original is returned
    wait_for(lambda: len(r.messages) == 1, t=t)
    assert r.messages[0]["ok"] == ["ok@rej.test"]


def test_4xx_then_success(net):
    net.dns("--mx-host=tmp.test,mx.tmp.test,10", "--host-record=mx.tmp.test,127.0.0.71")
    r = net.receiver("127.0.0.71", rcpt={"bob@tmp.test": "451 4.7.1 greylisted"})
    t = net.tern()
    send(t, ["bob@tmp.test"])
    wait_for(lambda: "status=deferred" in t.log(), t=t)
    r.rcpt = {}
    wait_for(lambda: len(r.messages) == 1, timeout=20, t=t)
    t.wait_log("status=sent")   # tern logs it once it has the 250
    assert t.messages("alice@example.test") == []


def test_expiry_bounce(net):
    net.dns("--mx-host=exp.test,mx.exp.test,10", "--host-record=mx.exp.test,127.0.0.81")
    net.receiver("127.0.0.81", rcpt={"bob@exp.test": "452 4.2.2 mailbox full"})
    t = net.tern(config={"queue": {"retry": "1s", "max_age": "3s"}})
    send(t, ["bob@exp.test"])
    (d,) = dsns(t, timeout=30)
    f = status_fields(d)[0]
    assert f["Action"] == "failed" and f["Status"] == "4.2.2"
    assert "mailbox full" in f["Diagnostic-Code"]


def test_null_sender_never_bounced(net):
    net.dns("--mx-host=rej2.test,mx.rej2.test,10", "--host-record=mx.rej2.test,127.0.0.91")
    net.receiver("127.0.0.91", rcpt={"x@rej2.test": "550 5.1.1 no"})
    t = net.tern()
    send(t, ["x@rej2.test"], sender="")
    wait_for(lambda: "status=bounced" in t.log(), t=t)
    # a message's notices are queued before it leaves the queue: once it is
    # removed, no notice for it can come
    wait_for(lambda: "event=removed" in t.log(), t=t)
    assert "event=dsn " not in t.log()


# ---- the client adapting to its peer --------------------------------------------

def test_ehlo_500_falls_back_to_helo(net):
    net.dns("--mx-host=old.test,mx.old.test,10", "--host-record=mx.old.test,127.0.0.101")
    r = net.receiver("127.0.0.101", ehlo="500 5.5.1 what")
    t = net.tern()
    send(t, ["bob@old.test"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    tr = r.transcripts[0]
    assert tr[0].startswith("EHLO") and tr[1] == "RSET" and tr[2].startswith("HELO")
    assert "SIZE=" not in r.messages[0]["from"]


def test_8bit_converted_for_7bit_peer(net):
    net.dns("--mx-host=sev.test,mx.sev.test,10", "--host-record=mx.sev.test,127.0.0.111")
    r = net.receiver("127.0.0.111", ext=("PIPELINING",))
    t = net.tern()
    body = "Subject: caf\u00e9 test\r\n".encode("ascii", "replace") + \
        "Content-Type: text/plain; charset=utf-8\r\n\r\ncaf\u00e9 = ok \r\n.dot\r\n".encode("utf-8")
    send(t, ["bob@sev.test"], body=body)
    wait_for(lambda: len(r.messages) == 1, t=t)
    data = r.messages[0]["data"]
    assert all(b < 0x80 for b in data)
    assert b"Content-Transfer-Encoding: quoted-printable" in data
    assert b"caf=C3=A9 =3D ok=20" in data
    assert b"\r\n..dot\r\n" in b"".join(r.chunks)
    msg = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert msg.get_content() == "caf\u00e9 = ok \n.dot\n"
    assert "BODY=8BITMIME" not in r.messages[0]["from"]


def test_8bit_multipart_to_7bit_peer_bounces(net):
    net.dns("--mx-host=sev2.test,mx.sev2.test,10", "--host-record=mx.sev2.test,127.0.0.112")
    r = net.receiver("127.0.0.112", ext=("PIPELINING",))
    t = net.tern()
    body = ("Subject: mp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\u00e9\r\n--b--\r\n").encode("utf-8")
    send(t, ["bob@sev2.test"], body=body)
    (d,) = dsns(t)
    assert status_fields(d)[0]["Status"] == "5.6.3"
    assert r.messages == []


def test_size_refusal_without_data(net):
    net.dns("--mx-host=small.test,mx.small.test,10", "--host-record=mx.small.test,127.0.0.121")
    r = net.receiver("127.0.0.121", ext=("PIPELINING", "SIZE 1000"))
    t = net.tern()
    send(t, ["bob@small.test"], body="Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 30)
    (d,) = dsns(t)
    assert status_fields(d)[0]["Status"] == "5.3.4"
    assert not any(l.startswith("MAIL") for tr in r.transcripts for l in tr)


def test_pipelining_one_read(net):
    net.dns("--mx-host=pipe.test,mx.pipe.test,10", "--host-record=mx.pipe.test,127.0.0.131")
    r = net.receiver("127.0.0.131", ext=("PIPELINING", "SIZE 100000", "8BITMIME", "DSN"))
    t = net.tern()
    send(t, ["a@pipe.test", "b@pipe.test"], rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
         mail_options=["RET=HDRS", "ENVID=env+2B1"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    group = [c for c in r.chunks if c.startswith(b"MAIL")]
    assert group, r.chunks
    g = group[0].decode()
    assert g.count("RCPT TO:") == 2 and g.rstrip().endswith("DATA")
    assert "SIZE=" in g and "RET=HDRS" in g and "ENVID=env+2B1" in g
    assert "NOTIFY=SUCCESS,FAILURE" in g


def test_connection_reuse(net):
    net.dns("--mx-host=reuse.test,mx.reuse.test,10", "--host-record=mx.reuse.test,127.0.0.141")
    r = net.receiver("127.0.0.141")
    t = net.tern(config={"delivery": {"reuse_idle": "10s"}})
    send(t, ["a@reuse.test"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    send(t, ["b@reuse.test"])
    wait_for(lambda: len(r.messages) == 2, t=t)
    assert r.connections == 1


def test_client_end_logged(net):
    """The client's every state change goes through its one writer, so the
    end of a connection (QUIT after the idle time, then freed) is logged
    as a last client_state line into dead."""
    net.dns("--mx-host=end.test,mx.end.test,10", "--host-record=mx.end.test,127.0.0.142")
    r = net.receiver("127.0.0.142")
    t = net.tern(config={"delivery": {"reuse_idle": "1s"}})
    send(t, ["a@end.test"])
    wait_for(lambda: len(r.messages) == 1, t=t)
    log = t.wait_log("from=quit to=dead", timeout=15)
    states = [l for l in log.splitlines() if "event=client_state" in l]
    assert states[-1].endswith("from=quit to=dead"), states


def test_hostile_replies_defer_not_crash(net):
    net.dns("--mx-host=bad.test,mx.bad.test,10", "--host-record=mx.bad.test,127.0.0.151")
    port = net.port
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.151", port))
    srv.listen(10)
    replies = [b"220 ok\r\n250-x\r\n" + b"250-" + b"a" * 3000 + b"\r\n",
               b"220-never\r\n" * 200,
               b"220 hi\rthere\r\n",
               b"220 x\r\n" + b"250-x\r\n" * 10]
    conns = []

    def hostile():
        for rep in replies:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)
            try:
                c.sendall(rep)
            except OSError:
                pass
    threading.Thread(target=hostile, daemon=True).start()
    t = net.tern(config={"queue": {"retry": "1s"}, "delivery": {"client_timeout": "2s"}})
    send(t, ["bob@bad.test"])
    wait_for(lambda: t.log().count("status=deferred") >= 3, timeout=30, t=t)
    assert t.proc.poll() is None
    srv.close()
    for c in conns:
        c.close()


def test_smarthost_auth_over_starttls(net, tmp_path):
    """aiosmtpd as the smarthost: STARTTLS required, then AUTH."""
    import ssl
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    net.dns()
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=smarthost.test"], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    got, logins = [], []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append((envelope.mail_from, envelope.rcpt_tos, session.ssl is not None))
            return "250 2.0.0 ok"

    def auth(server, session, envelope, mechanism, data):
        logins.append((mechanism, data.login, data.password))
        return AuthResult(success=data.login == b"relay@dest.test" and data.password == b"s3cret")

    port = free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                     authenticator=auth, auth_require_tls=True)
    ctl.start()
    try:
        t = net.tern(config={"relay": {"smarthost": f"[127.0.0.1]:{port}",
                                       "smarthost_user": "relay@dest.test", "smarthost_password": "s3cret"},
                             "delivery": {"tls_required": "127.0.0.1"}})
        send(t, ["carol@dest.test"])
        wait_for(lambda: got, t=t)
        assert got[0][1] == ["carol@dest.test"] and got[0][2] is True
        assert logins and logins[0][0] == "PLAIN"
        t.wait_log("status=sent")   # tern logs it once it has the 250
        assert "from=tls to=ehlo" in t.log()
        assert "s3cret" not in t.log()
    finally:
        ctl.stop()


def test_smarthost_wrong_password_defers(net):
    """AUTH failure is not the message's fault: defer, never bounce."""
    net.dns()
    r = net.receiver("127.0.0.171", ext=("AUTH PLAIN LOGIN",))
    r.ehlo = "250"
    t = net.tern(config={"relay": {"smarthost": f"[127.0.0.171]:{net.port}",
                                   "smarthost_user": "u", "smarthost_password": "p"}})
    send(t, ["carol@dest.test"])
    wait_for(lambda: "status=deferred" in t.log(), t=t)
    assert r.messages == []


def test_restart_in_retry_schedule(net):
    net.dns("--mx-host=rs.test,mx.rs.test,10", "--host-record=mx.rs.test,127.0.0.161")
    r = net.receiver("127.0.0.161", rcpt={"bob@rs.test": "451 4.3.0 later"})
    t = net.tern(config={"queue": {"retry": "3s"}})
    send(t, ["bob@rs.test"])
    wait_for(lambda: "status=deferred" in t.log(), t=t)
    t.stop()
    st = [f for f in os.listdir(os.path.join(t.state, "queue", "msg")) if f.endswith(".st")]
    assert len(st) == 1
    with open(os.path.join(t.state, "queue", "msg", st[0])) as f:
        assert " 1 1 " in f.read()          # deferred, one attempt
    r.rcpt = {}
    t.start()
    wait_for(lambda: len(r.messages) == 1, timeout=20, t=t)
    wait_for(lambda: os.listdir(os.path.join(t.state, "queue", "msg")) == [], t=t)


def test_loop_to_self_bounces(net):
    net.dns("--mx-host=loop.test,mx.test,10", "--host-record=mx.test,127.0.0.1")
    t = net.tern()
    send(t, ["bob@loop.test"])
    (d,) = dsns(t)
    assert status_fields(d)[0]["Status"] == "5.4.6"

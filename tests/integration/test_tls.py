"""TLS: STARTTLS on 25 and 587 (RFC 3207), implicit TLS on 465 (RFC 8314),
the STARTTLS injection, protocol versions, the self-signed development
certificate, explicit certificates and their reload on SIGHUP."""
import os
import signal
import smtplib
import socket
import stat
import subprocess
import time

import pytest

from authutil import Dialog, b64, client_tls
from conftest import recv_reply, codes
from smtpraw import wait_for


def s_client(port, *args, starttls=True):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *args]
    if starttls:
        cmd += ["-starttls", "smtp"]
    return subprocess.run(cmd, input="QUIT\n", capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_starttls_then_fresh_session(make_tern, service):
    t = make_tern(services=("smtp", "submission"))
    d = Dialog(t.port(service))
    assert "250-STARTTLS" in d.cmd("EHLO client.test")
    d.starttls()
    # RFC 3207 4.2: the session starts over - no EHLO known any more
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("503 5.5.1")
    ehlo = d.cmd("EHLO client.test")
    assert "STARTTLS" not in ehlo and "250-AUTH PLAIN LOGIN" in ehlo
    assert d.cmd("STARTTLS").startswith("503 5.5.1")
    assert d.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("235")
    assert d.cmd("MAIL FROM:<alice@example.test>").startswith("250")
    assert d.cmd("RCPT TO:<bob@example.test>").startswith("250")
    assert d.cmd("DATA").startswith("354")
    assert d.cmd("Subject: tls\r\n\r\nhello\r\n.").startswith("250")
    assert d.cmd("QUIT").startswith("221")
    msg = t.wait_messages("bob@example.test", 1)[0]
    assert b"with ESMTPSA (TLSv1.3 TLS_" in msg


def test_starttls_injection_is_discarded(make_tern):
    t = make_tern(services=("smtp", "submission"))
    d = Dialog(t.port())
    d.cmd("EHLO client.test")
    # one packet: STARTTLS plus a command that must never be answered
    d.send("STARTTLS\r\nRSET\r\nMAIL FROM:<evil@far.test>\r\n")
    r = recv_reply(d.sock)
    assert r == "220 2.0.0 Ready to start TLS\r\n"
    d.sock = client_tls().wrap_socket(d.sock)
    d.sock.settimeout(0.7)
    with pytest.raises((socket.timeout, TimeoutError)):
        extra = d.sock.recv(1000)
        raise AssertionError(f"reply to injected command: {extra!r}")
    d.sock.settimeout(10)
    assert codes(d.cmd("EHLO client.test")) == [250]
    # no transaction was started by the injected MAIL
    assert d.cmd("RCPT TO:<bob@example.test>").startswith("503")


def test_smtplib_starttls_and_smtp_ssl(make_tern):
    t = make_tern(services=("smtp", "submission", "submissions"))
    c = t.smtp("submission")
    c.starttls(context=client_tls())
    c.login("alice@example.test", "alicepw")
    c.sendmail("alice@example.test", ["bob@example.test"], "Subject: 587\r\n\r\nx\r\n")
    c.quit()
    c = smtplib.SMTP_SSL("127.0.0.1", t.port("submissions"), context=client_tls(),
                         local_hostname="client.test", timeout=10)
    code, greet = c.ehlo()
    assert code == 250 and "starttls" not in c.esmtp_features
    c.login("alice@example.test", "alicepw")
    c.sendmail("alice@example.test", ["bob@example.test"], "Subject: 465\r\n\r\nx\r\n")
    c.quit()
    msgs = t.wait_messages("bob@example.test", 2)
    assert all(b"ESMTPSA (TLSv1.3" in m for m in msgs)


def test_implicit_tls_greeting_after_handshake(make_tern):
    t = make_tern(services=("smtp", "submissions"))
    d = Dialog(t.port("submissions"), tls=True)
    assert d.greeting.startswith("220 mx.test ESMTP")
    assert d.cmd("AUTH LOGIN").startswith("503 5.5.1")  # EHLO first
    d.cmd("EHLO x")
    assert d.cmd("MAIL FROM:<alice@example.test>").startswith("530 5.7.0")
    # a plaintext client on 465 gets no SMTP at all
    s = socket.create_connection(("127.0.0.1", t.port("submissions")), timeout=5)
    s.sendall(b"EHLO x\r\n")
    try:
        data = s.recv(1000)
    except ConnectionResetError:
        data = b""
    assert not data.startswith(b"220") and not data.startswith(b"250")
    t.wait_log("event=tls_failed")


def test_implicit_tls_refusal_goes_over_tls(make_tern):
    """Over the per-address limit on 465, the 421 comes after the
    handshake, inside TLS, and never a 220 with it; then the server
    closes.  The first session keeps talking (NOOP within 2 s)."""
    t = make_tern(services=("smtp", "submissions"),
                  config={"smtp": {"max_connections_per_ip": "1", "command_timeout": "2s"}})
    def greeted():   # once the fixture's probes have gone
        d = Dialog(t.port("submissions"), tls=True)
        if d.greeting.startswith("220 mx.test ESMTP"):
            return d
        d.close()
        return None
    first = wait_for(greeted, 30)
    assert first is not None
    t.wait_log("event=disconnect", n=t.log().count("event=connect") - 1)
    raw = socket.create_connection(("127.0.0.1", t.port("submissions")), timeout=10)
    s = client_tls().wrap_socket(raw)
    data = b""
    while True:
        chunk = s.recv(1000)
        if not chunk:
            break
        data += chunk
    assert data == b"421 4.7.0 Too many connections from your address, try again later\r\n"
    s.close()
    assert first.cmd("NOOP").startswith("250")
    # a refused client that never starts the handshake is dropped in time
    silent = socket.create_connection(("127.0.0.1", t.port("submissions")), timeout=20)
    start = time.time()
    assert silent.recv(100) == b""
    assert 1.5 < time.time() - start < 8
    silent.close()


@pytest.mark.parametrize("flag,ok", [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)])
def test_protocol_versions(make_tern, flag, ok):
    t = make_tern(services=("smtp", "submissions"))
    extra = ["-cipher", "DEFAULT@SECLEVEL=0"] if not ok else []
    for port, starttls in ((t.port("smtp"), True), (t.port("submissions"), False)):
        r = s_client(port, flag, *extra, starttls=starttls)
        out = r.stdout + r.stderr
        want = {"-tls1": "TLSv1", "-tls1_1": "TLSv1.1", "-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[flag]
        if ok:
            assert f"Protocol version: {want}\n" in out, out
        else:
            assert "Protocol version:" not in out and r.returncode != 0, out


def test_tls12_ciphers_are_aead_with_forward_secrecy(make_tern):
    t = make_tern(services=("smtp", "submissions"))
    for cipher, ok in (("ECDHE-ECDSA-AES128-GCM-SHA256", True), ("AES128-SHA", False),
                       ("ECDHE-ECDSA-AES128-SHA", False)):
        r = s_client(t.port("submissions"), "-tls1_2", "-cipher", cipher, starttls=False)
        assert ("Ciphersuite: " + cipher in r.stdout + r.stderr) == ok, r.stdout + r.stderr


def test_self_signed_development_certificate(make_tern):
    t = make_tern(services=("smtp", "submission"))
    cert = os.path.join(t.state, "tls", "cert.pem")
    key = os.path.join(t.state, "tls", "key.pem")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-text"], capture_output=True,
                          text=True).stdout
    assert "CN = mx.test" in text and "DNS:mx.test" in text and "prime256v1" in text
    assert "event=tls_selfsigned level=warning" in t.log()
    # a restart keeps the same certificate
    before = open(cert).read()
    t.restart()
    assert open(cert).read() == before
    # port 25 alone offers STARTTLS once a certificate exists
    t2 = make_tern(services=("smtp",))
    d = Dialog(t2.port())
    assert "STARTTLS" not in d.cmd("EHLO x")
    os.makedirs(os.path.join(t2.state, "tls"))
    for name in ("cert.pem", "key.pem"):
        with open(os.path.join(t.state, "tls", name)) as src, \
                open(os.path.join(t2.state, "tls", name), "w") as dst:
            dst.write(src.read())
    t2.restart()
    d = Dialog(t2.port())
    assert "250-STARTTLS" in d.cmd("EHLO x")


def make_cert(dirname, cn):
    key, cert = os.path.join(dirname, f"{cn}.key"), os.path.join(dirname, f"{cn}.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True)
    return cert, key


def peer_cn(port):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts"],
                       input="", capture_output=True, text=True, timeout=20)
    for line in r.stdout.splitlines():
        if line.strip().startswith("0 s:"):
            return line.split("CN = ")[-1].strip()
    return None


def test_explicit_cert_and_sighup_reload(make_tern, tmp_path):
    cert, key = make_cert(str(tmp_path), "first.test")
    t = make_tern(services=("smtp", "submissions"), config={"tls": {"cert": cert, "key": key}})
    assert peer_cn(t.port("submissions")) == "first.test"
    assert not os.path.exists(os.path.join(t.state, "tls"))
    live = Dialog(t.port("submissions"), tls=True)
    live.cmd("EHLO x")
    cert2, key2 = make_cert(str(tmp_path), "second.test")
    os.replace(cert2, cert)
    os.replace(key2, key)
    t.proc.send_signal(signal.SIGHUP)
    t.wait_log("event=tls_reloaded")
    assert peer_cn(t.port("submissions")) == "second.test"
    # the live session kept its TLS session and goes on
    assert live.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alicepw")).startswith("235")
    assert live.cmd("QUIT").startswith("221")
    # a broken file on reload keeps the old context
    with open(cert, "w") as f:
        f.write("garbage\n")
    t.proc.send_signal(signal.SIGHUP)
    t.wait_log("event=tls_reload_failed")
    assert peer_cn(t.port("submissions")) == "second.test"


def test_missing_explicit_cert_is_fatal(make_tern, tmp_path):
    t = make_tern(start=False, services=("smtp", "submission"),
                  config={"tls": {"cert": str(tmp_path / "nope.pem"), "key": str(tmp_path / "nope.key")}})
    t.start(wait=False)
    rc = t.proc.wait(10)
    t.proc = None
    assert rc != 0
    assert "nope.pem" in t.log()


def test_no_compression_no_renegotiation(make_tern):
    t = make_tern(services=("smtp", "submissions"))
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{t.port('submissions')}", "-tls1_2"],
                       input="R\n", capture_output=True, text=True, timeout=20)
    out = r.stdout + r.stderr
    assert "Compression: NONE" in out
    # the server refuses a renegotiation the client starts
    assert "RENEGOTIATING" in out and ("error" in out or "alert" in out), out


def test_abrupt_clients_do_not_hurt(make_tern):
    """Peers that vanish at every awkward moment: right after STARTTLS,
    mid-handshake, with garbage for a ClientHello, during a delayed AUTH
    failure; then a shutdown while a failure reply is still pending."""
    t = make_tern(services=("smtp", "submission", "submissions"))
    for _ in range(5):
        d = Dialog(t.port())
        d.cmd("EHLO x")
        d.send("STARTTLS\r\n")
        d.close()
        d = Dialog(t.port("submission"))
        d.cmd("EHLO x")
        d.send("STARTTLS\r\n")
        recv_reply(d.sock)
        d.send(b"\x16\x03\x01\x00\x05hello-not-tls")
        d.close()
        s = socket.create_connection(("127.0.0.1", t.port("submissions")))
        s.sendall(b"\x16\x03\x01\x02\x00\x01")   # half a ClientHello
        s.close()
        d = Dialog(t.port())
        d.cmd("EHLO x")
        d.send("AUTH PLAIN " + b64("\0alice@example.test\0bad") + "\r\n")
        d.close()
    # every vanished AUTH has failed: their delayed replies (growing, the
    # last ones seconds long) are pending while the shutdown comes
    t.wait_log(" event=auth_failed ", n=5)
    before = t.open_sessions()
    pending = Dialog(t.port("submission"))
    pending.cmd("EHLO x")
    (sid,) = t.open_sessions() - before
    pending.starttls()
    pending.cmd("EHLO x")
    pending.send("AUTH PLAIN " + b64("\0alice@example.test\0bad") + "\r\n")
    # its AUTH is answered (blocked after five failures) or its failure
    # reply is set up; either way the server has it
    t.wait_for_log(rf"event=auth_(failed|blocked) session={sid} ")
    assert t.stop() == 0
    assert "AddressSanitizer" not in t.log()

"""Password checks never run on the event loop: while 20 clients log in at
once with yescrypt secrets (SMTP AUTH PLAIN on submission, POP3 USER/PASS,
POP3 AUTH PLAIN, IMAP LOGIN and AUTHENTICATE PLAIN on IMAPS), another
session's NOOP round trip stays short.

Before login/ (main at c0895dc), POP3 AUTH PLAIN ran yescrypt on the loop:
the NOOP round trip went from under 1 ms to ~500 ms under this load; the
first IMAP login of each user made its Maildir on the loop (1-3.6 s). The
bound here (150 ms for the slowest NOOP) is generous for a loaded 2-core
machine and still far below that.
"""
import base64
import socket
import ssl
import threading

import pytest

from conftest import noop_round_trips_while, recv_reply, smtp_probe

CONCURRENT = 20
BOUND_S = 0.150
PASSWORD = "Loadpw-17"


def users_with_one_hash(t, n):
    """n users whose {CRYPT} secret is one yescrypt hash (made by `tern user
    add`): each check costs a real yescrypt, and the file is made in one go."""
    r = t.cli("user", "add", "u0@example.test", "--scheme", "crypt", input=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    line = [l for l in open(t.users_path) if l.startswith("u0@example.test:")][0]
    secret = line.split(":", 1)[1].strip()
    assert secret.startswith("{CRYPT}$y$")
    with open(t.users_path, "w") as f:
        for i in range(n):
            f.write(f"u{i}@example.test:{secret}\n")


def line_reader(sock):
    buf = b""
    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise EOFError(buf)
            buf += chunk
        line, buf = buf.split(b"\r\n", 1)
        yield line


def smtp_auth_plain(t, i):
    s = socket.create_connection(("127.0.0.1", t.port("submission")), timeout=60)
    try:
        recv_reply(s, 60)
        s.sendall(b"EHLO load.test\r\n")
        recv_reply(s, 60)
        msg = base64.b64encode(f"\0u{i}@example.test\0{PASSWORD}".encode()).decode()
        s.sendall(f"AUTH PLAIN {msg}\r\n".encode())
        return recv_reply(s, 60).startswith("235")
    finally:
        s.close()


def pop3_login(t, i, how):
    s = socket.create_connection(("127.0.0.1", t.port("pop3")), timeout=60)
    try:
        lines = line_reader(s)
        next(lines)
        if how == "user":
            s.sendall(f"USER u{i}@example.test\r\nPASS {PASSWORD}\r\n".encode())
            assert next(lines).startswith(b"+OK")
        else:
            msg = base64.b64encode(f"\0u{i}@example.test\0{PASSWORD}".encode()).decode()
            s.sendall(f"AUTH PLAIN {msg}\r\n".encode())
        ok = next(lines).startswith(b"+OK Logged in")
        s.sendall(b"QUIT\r\n")
        return ok
    finally:
        s.close()


def imap_connect(t, i):
    """Over IMAPS (plain-text IMAP says LOGINDISABLED before STARTTLS); the
    TLS handshake and greeting come before the burst, which is the logins."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", t.port("imaps")), timeout=60))
    lines = line_reader(s)
    assert next(lines).startswith(b"* OK")
    return s, lines


def imap_login(t, i, how, conn):
    s, lines = conn
    try:
        if how == "login":
            s.sendall(f"a LOGIN u{i}@example.test {PASSWORD}\r\n".encode())
        else:
            msg = base64.b64encode(f"\0u{i}@example.test\0{PASSWORD}".encode()).decode()
            s.sendall(f"a AUTHENTICATE PLAIN {msg}\r\n".encode())
        line = next(lines)
        while not line.startswith(b"a "):
            line = next(lines)
        s.sendall(b"b LOGOUT\r\n")
        return line.startswith(b"a OK")
    finally:
        s.close()


LOGINS = {
    "imap_login": (imap_connect, lambda t, i, c: imap_login(t, i, "login", c)),
    "imap_authenticate_plain": (imap_connect, lambda t, i, c: imap_login(t, i, "auth", c)),
    "smtp_auth_plain": smtp_auth_plain,
    "pop3_user_pass": lambda t, i: pop3_login(t, i, "user"),
    "pop3_auth_plain": lambda t, i: pop3_login(t, i, "auth"),
}


def noop_round_trips_during(t, login):
    """Start CONCURRENT logins at once; while any is unanswered, time NOOP
    round trips on an SMTP session opened before.  Returns (rtts, oks)."""
    probe = smtp_probe(t)
    oks = [None] * CONCURRENT
    go = threading.Barrier(CONCURRENT + 1)

    prepare = None
    if isinstance(login, tuple):
        prepare, login_after = login
        login = None

    def one(i):
        if prepare:
            conn = prepare(t, i)
            go.wait()
            oks[i] = login_after(t, i, conn)
            return
        go.wait()
        oks[i] = login(t, i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENT)]
    for th in threads:
        th.start()
    go.wait()
    return noop_round_trips_while(probe, threads), oks


@pytest.mark.parametrize("kind", sorted(LOGINS))
def test_round_trip_stays_short_under_concurrent_yescrypt_logins(make_tern, kind):
    t = make_tern(services=("smtp", "submission", "pop3", "imaps"), users={}, start=False)
    users_with_one_hash(t, CONCURRENT)
    t.start()
    rtts, oks = noop_round_trips_during(t, LOGINS[kind])
    assert oks == [True] * CONCURRENT, (oks, t.log()[-2000:])
    print(f"{kind}: {len(rtts)} NOOPs, max {max(rtts) * 1000:.1f} ms, p99 {sorted(rtts)[int(len(rtts) * .99)] * 1000:.1f} ms")
    assert rtts and max(rtts) < BOUND_S, \
        f"{kind}: slowest NOOP {max(rtts) * 1000:.1f} ms of {len(rtts)}"
    # issue 12's figure: another session's round trip under 50 ms (p99;
    # the slowest one gets the looser bound above on this shared machine)
    assert sorted(rtts)[int(len(rtts) * .99)] < 0.050, rtts
    # the load was real: round trips were measured while it ran
    assert len(rtts) >= 3, rtts
    assert t.log().count("event=auth ") >= CONCURRENT
    assert PASSWORD not in t.log()

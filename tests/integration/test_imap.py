"""IMAP (RFC 9051 / 3501) against the real binary with Python's imaplib and
raw dialogs: LOGINDISABLED before TLS, STARTTLS and IMAPS, the SPECIAL-USE
folders of the first login, FETCH of what SMTP delivered (exact sizes,
sections, \\Seen into the file name), STORE/SEARCH/COPY/MOVE/EXPUNGE,
APPEND (flags, date, TOOBIG before any octet), UIDs and UIDVALIDITY across
a restart and files dropped in by other programs, two sessions on one
folder (no EXPUNGE during FETCH), IDLE hearing a delivery within a second,
and bad input.

Mail is delivered through tern's own SMTP port: SMTP -> queue -> Maildir
-> IMAP.
"""
import imaplib
import os
import re
import socket
import ssl
import time

import pytest

from conftest import arrival_key

ALICE = "alice@example.test"
SERVICES = ("smtp", "imap", "imaps")


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def deliver(t, bodies, rcpt=ALICE):
    md = t.maildir(rcpt)
    def count():
        n = 0
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            n += len(os.listdir(d)) if os.path.isdir(d) else 0
        return n
    before = count()
    with t.smtp() as c:
        for body in bodies:
            c.sendmail("sender@remote.test", [rcpt], body)
    deadline = time.time() + 30
    while time.time() < deadline:
        if count() >= before + len(bodies):
            return
        time.sleep(0.02)
    raise AssertionError("delivery did not finish\n" + t.log()[-3000:])


def msg(i, extra=""):
    return (f"From: Sender <sender@remote.test>\r\nTo: {ALICE}\r\nSubject: message {i}\r\n"
            f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody of {i}\r\n{extra}")


def imaps(t, user=ALICE, pw="alicepw"):
    c = imaplib.IMAP4_SSL("127.0.0.1", t.port("imaps"), ssl_context=tls_ctx(), timeout=10)
    c.login(user, pw)
    return c


class Raw:
    """A raw IMAP dialog over TLS (IMAPS): send a line, read until the tag."""

    def __init__(self, t, tls=True):
        sock = socket.create_connection(("127.0.0.1", t.port("imaps" if tls else "imap")), timeout=10)
        self.s = tls_ctx().wrap_socket(sock) if tls else sock
        self.buf = b""
        self.greeting = self.line()

    def line(self, timeout=10):
        self.s.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, tag, text, timeout=10):
        self.send(f"{tag} {text}\r\n")
        return self.until(tag, timeout)

    def until(self, tag, timeout=10):
        out = []
        while True:
            l = self.line(timeout)
            out.append(l)
            if l.startswith(tag + " "):
                return out


def test_logindisabled_before_tls(make_tern):
    t = make_tern(services=SERVICES)
    r = Raw(t, tls=False)
    assert r.greeting.startswith("* OK [CAPABILITY ")
    assert "STARTTLS" in r.greeting and "LOGINDISABLED" in r.greeting
    assert "AUTH=" not in r.greeting
    out = r.cmd("a1", "LOGIN alice@example.test alicepw")
    assert out[-1].startswith("a1 NO [PRIVACYREQUIRED]")
    # STARTTLS: then LOGIN works and LOGINDISABLED is gone
    c = imaplib.IMAP4("127.0.0.1", t.port("imap"), timeout=10)
    assert "LOGINDISABLED" in c.capabilities
    c.starttls(tls_ctx())
    assert "LOGINDISABLED" not in c.capabilities and "AUTH=PLAIN" in c.capabilities
    assert c.login(ALICE, "alicepw")[0] == "OK"
    c.logout()


def test_same_answer_for_unknown_user_and_wrong_password(make_tern):
    t = make_tern(services=SERVICES)
    answers = []
    for user, pw in ((ALICE, "wrong"), ("nobody@example.test", "alicepw")):
        r = Raw(t)
        out = r.cmd("a", f"LOGIN {user} {pw}")
        answers.append(out[-1])
    assert answers[0] == answers[1] == "a NO [AUTHENTICATIONFAILED] Authentication failed"


def test_authenticate_sasl_ir(make_tern):
    import base64
    t = make_tern(services=SERVICES)
    r = Raw(t)
    ir = base64.b64encode(b"\0alice@example.test\0alicepw").decode()
    out = r.cmd("a", f"AUTHENTICATE PLAIN {ir}")
    assert out[-1].startswith("a OK")
    # and without the initial response: a "+ " continuation
    r = Raw(t)
    r.send("b AUTHENTICATE PLAIN\r\n")
    assert r.line().startswith("+")
    r.send(ir + "\r\n")
    assert r.until("b")[-1].startswith("b OK")


def test_special_use_folders_and_list(make_tern):
    t = make_tern(services=SERVICES)
    c = imaps(t)
    typ, data = c.list()
    assert typ == "OK"
    lines = [d.decode() for d in data]
    for name, use in (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"),
                      ("Junk", "\\Junk"), ("Archive", "\\Archive")):
        assert any(l.endswith(f'"/" {name}') and use in l for l in lines), lines
        assert os.path.isdir(os.path.join(t.maildir(ALICE), "." + name, "cur"))
    assert any(l.endswith('"/" INBOX') for l in lines)
    assert c.create("Work/Projects")[0] == "OK"
    assert os.path.isdir(os.path.join(t.maildir(ALICE), ".Work.Projects", "cur"))
    typ, data = c.list('""', "Work*")
    names = [d.decode() for d in data]
    assert any("Work/Projects" in l and "\\HasNoChildren" in l for l in names), names
    assert c.create("Work")[0] == "OK"
    typ, data = c.list('""', "%")
    assert any(l.decode().endswith('"/" Work') and "\\HasChildren" in l.decode() for l in data)
    assert c.rename("Work", "Jobs")[0] == "OK"
    assert os.path.isdir(os.path.join(t.maildir(ALICE), ".Jobs.Projects", "cur"))
    assert c.create("Sent")[0] == "NO"
    assert c.delete("Jobs/Projects")[0] == "OK"
    assert c.select("Nope")[0] == "NO"
    c.logout()


def test_fetch_what_smtp_delivered(make_tern):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1, "second line\r\n"), msg(2)])
    files = sorted(os.listdir(os.path.join(t.maildir(ALICE), "new")), key=arrival_key)
    assert len(files) == 2
    with open(os.path.join(t.maildir(ALICE), "new", files[0]), "rb") as f:
        raw = f.read()
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    c = imaps(t)
    typ, data = c.select("INBOX")
    assert data == [b"2"]
    typ, data = c.fetch("1:2", "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    first = data[0].decode()
    assert "UID 1 " in first and f"RFC822.SIZE {len(crlf)}" in first
    assert '"message 1"' in first and '(("Sender" NIL "sender" "remote.test"))' in first
    assert 'BODYSTRUCTURE ("text" "plain"' in first
    # BODY.PEEK does not set \Seen
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert data[0][1] == crlf
    assert not any(":2,S" in n for n in os.listdir(os.path.join(t.maildir(ALICE), "cur")))
    typ, data = c.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)] BODY[TEXT] BODY[]<2.5>)")
    assert data[0][1] == b"Subject: message 1\r\n\r\n"
    assert data[1][1] == b"body of 1\r\nsecond line\r\n"
    assert data[2][1] == crlf[2:7]
    # BODY[] set \Seen: the client heard, and the file name says S
    assert "\\Seen" in data[-1].decode()
    cur = os.listdir(os.path.join(t.maildir(ALICE), "cur"))
    assert any(n.endswith(":2,S") for n in cur), cur
    typ, data = c.uid("FETCH", "2", "(FLAGS)")
    assert "UID 2" in data[0].decode() and "\\Seen" not in data[0].decode()
    c.logout()


def test_keyword_length_bounded_and_long_dovecot_lines_skipped(make_tern):
    """A keyword is at most 255 octets (it goes into the folder's
    dovecot-keywords file): a longer one is refused and does not stop
    later keywords reaching the file; a dovecot-keywords line longer than
    any buffer is skipped whole, never read as a cut name."""
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2)])
    md = t.maildir(ALICE)
    c = imaps(t)
    c.select("INBOX")
    with pytest.raises(imaplib.IMAP4.error):
        c.store("1", "+FLAGS", "(" + "k" * 1200 + ")")
    typ, data = c.store("1", "+FLAGS", "($Label1 " + "m" * 255 + ")")
    assert typ == "OK" and "$Label1" in data[0].decode(), data
    with open(os.path.join(md, "dovecot-keywords")) as f:
        assert f.read() == "0 $Label1\n1 " + "m" * 255 + "\n"
    assert any(n.endswith(":2,ab") for n in os.listdir(os.path.join(md, "cur")))
    c.logout()
    # another program (a Dovecot with a larger limit) writes a 1,050-octet
    # name at letter c: tern skips the line, keeps a and b, gives c nothing
    with open(os.path.join(md, "dovecot-keywords"), "a") as f:
        f.write("2 " + "x" * 1050 + "\n")
    st = os.stat(os.path.join(md, "dovecot-keywords"))
    os.utime(os.path.join(md, "dovecot-keywords"), (st.st_atime, st.st_mtime + 2))
    c = imaps(t)
    c.select("INBOX")
    typ, data = c.fetch("1", "(FLAGS)")
    flags = data[0].decode()
    assert "$Label1" in flags and "m" * 255 in flags and "x" * 100 not in flags, flags
    typ, data = c.store("2", "+FLAGS", "($Later)")
    assert typ == "OK", data
    c.logout()
    with open(os.path.join(md, "dovecot-keywords")) as f:
        names = [line.split(" ", 1)[1].rstrip("\n") for line in f]
    assert "$Later" in names and not any(n.startswith("x") and len(n) != 1050 for n in names), names


def test_store_search_copy_move_expunge(make_tern):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2), msg(3, "needle in the body\r\n")])
    c = imaps(t)
    c.select("INBOX")
    typ, data = c.store("1", "+FLAGS", "(\\Flagged \\Seen $Work)")
    assert "\\Flagged" in data[0].decode() and "$Work" in data[0].decode()
    cur = os.listdir(os.path.join(t.maildir(ALICE), "cur"))
    # $Work is Dovecot's letter a, named in the folder's dovecot-keywords
    assert sum(1 for n in cur if n.endswith(":2,FSa")) == 1, cur
    with open(os.path.join(t.maildir(ALICE), "dovecot-keywords")) as f:
        assert f.read() == "0 $Work\n"
    assert c.search(None, "FLAGGED")[1] == [b"1"]
    assert c.search(None, "UNSEEN")[1] == [b"2 3"]
    assert c.search(None, "KEYWORD", "$Work")[1] == [b"1"]
    assert c.search(None, "BODY", "needle")[1] == [b"3"]
    assert c.search(None, "SUBJECT", '"message 2"')[1] == [b"2"]
    assert c.search(None, "OR", "FLAGGED", "BODY", "needle")[1] == [b"1 3"]
    assert c.search(None, "NOT", "FLAGGED", "SENTON", "1-Jan-2024")[1] == [b"2 3"]
    assert c.search(None, "SINCE", "1-Jan-2020", "LARGER", "10")[1] == [b"1 2 3"]
    assert c.uid("SEARCH", "UID", "2:*")[1] == [b"2 3"]
    typ, data = c.copy("1", "Archive")
    assert typ == "OK" and b"COPYUID" in data[0]
    typ, data = c.uid("MOVE", "2", "Trash")
    assert typ == "OK"
    assert c.status("Trash", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 1)")
    typ, data = c.select("INBOX")
    assert data == [b"2"]
    c.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = c.expunge()
    assert data == [b"1"]
    assert c.select("INBOX")[1] == [b"1"]
    typ, data = c.select("Archive")
    assert data == [b"1"]
    typ, data = c.fetch("1", "(FLAGS)")
    assert "\\Flagged" in data[0].decode() and "$Work" in data[0].decode()
    c.logout()


def test_append_flags_date_and_toobig(make_tern):
    t = make_tern(services=SERVICES, config={"smtp": {"max_message_size": "4096"}})
    c = imaps(t)
    typ, data = c.append("Sent", "(\\Seen \\Draft)", '"05-Mar-2023 12:34:56 +0000"',
                         b"Subject: draft\r\n\r\nhello\r\n")
    assert typ == "OK"
    m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
    assert m and m.group(2) == b"1"
    cur = os.listdir(os.path.join(t.maildir(ALICE), ".Sent", "cur"))
    assert len(cur) == 1 and cur[0].endswith(":2,DS") and ",W=25" in cur[0]
    c.select("Sent")
    typ, data = c.fetch("1", "(INTERNALDATE RFC822.SIZE)")
    assert b'INTERNALDATE "05-Mar-2023 12:34:56 +0000"' in data[0] and b"RFC822.SIZE 25" in data[0]
    assert c.append("Nope", None, None, b"x\r\n")[0] == "NO"
    c.logout()

    # RFC 7889: TOOBIG before any octet; a synchronizing literal gets no "+"
    r = Raw(t)
    assert r.cmd("a", "LOGIN alice@example.test alicepw")[-1].startswith("a OK")
    assert "APPENDLIMIT=4096" in r.cmd("c", "CAPABILITY")[0]
    r.send("b APPEND INBOX {5000}\r\n")
    assert r.line().startswith("b NO [TOOBIG]")
    # a non-synchronizing one comes anyway: dropped, the session goes on
    r.send(b"d APPEND INBOX {5000+}\r\n" + b"x" * 5000 + b"\r\n")
    assert r.until("d")[-1].startswith("d NO [TOOBIG]")
    assert r.cmd("e", "NOOP")[-1].startswith("e OK")
    assert r.cmd("f", "STATUS INBOX (MESSAGES)")[0] == "* STATUS INBOX (MESSAGES 0)"
    assert os.listdir(os.path.join(t.maildir(ALICE), "tmp")) == []


def test_append_streams_a_big_literal(make_tern):
    t = make_tern(services=SERVICES)
    body = b"Subject: big\r\n\r\n" + (b"0123456789" * 7 + b"\r\n") * 40000   # ~2.9 MB
    c = imaps(t)
    assert c.append("INBOX", None, None, body)[0] == "OK"
    c.select("INBOX")
    typ, data = c.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert b"RFC822.SIZE %d" % len(body) in data[0][0]
    assert data[0][1] == body
    c.logout()


def test_uids_survive_restart_and_dropped_files(make_tern):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2)])
    c = imaps(t)
    c.select("INBOX")
    validity = c.response("UIDVALIDITY")[1][0]
    c.store("2", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    t.restart()
    # another program drops a message into new/
    md = t.maildir(ALICE)
    with open(os.path.join(md, "new", "1999999999.M1P1Q1.other"), "w") as f:
        f.write("Subject: dropped\n\nhi\n")
    c = imaps(t)
    typ, data = c.select("INBOX")
    assert data == [b"2"]
    assert c.response("UIDVALIDITY")[1][0] == validity
    typ, data = c.fetch("1:*", "(UID RFC822.SIZE)")
    assert b"UID 1 " in data[0] and b"(UID 3 RFC822.SIZE 24)" in data[1]
    c.logout()
    # a file renamed by another reader (flags) is noticed
    cur = os.path.join(md, "cur")
    name = [n for n in os.listdir(cur) if n.startswith("1999999999")][0]
    os.rename(os.path.join(cur, name), os.path.join(cur, name.split(":")[0] + ":2,FS"))
    c = imaps(t)
    c.select("INBOX")
    typ, data = c.uid("FETCH", "3", "(FLAGS)")
    assert b"\\Flagged" in data[0] and b"\\Seen" in data[0]
    c.logout()


def test_two_sessions_expunge_at_the_right_moment(make_tern):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2)])
    a = Raw(t)
    b = imaps(t)
    a.cmd("l", "LOGIN alice@example.test alicepw")
    a.cmd("s", "SELECT INBOX")
    b.select("INBOX")
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    # never an EXPUNGE during FETCH (RFC 9051 7.5.1); the flag change may be told
    out = a.cmd("f", "FETCH 2 (UID)")
    assert not any("EXPUNGE" in l for l in out), out
    out = a.cmd("n", "NOOP")
    assert "* 1 EXPUNGE" in out, out
    b.logout()


def test_idle_hears_delivery_within_a_second(make_tern):
    t = make_tern(services=SERVICES)
    r = Raw(t)
    r.cmd("l", "LOGIN alice@example.test alicepw")
    out = r.cmd("s", "SELECT INBOX")
    assert "* 0 EXISTS" in out
    r.send("i IDLE\r\n")
    assert r.line().startswith("+ ")
    start = time.time()
    deliver(t, [msg(1)])
    delivered = time.time()
    line = r.line(timeout=5)
    heard = time.time()
    assert line == "* 1 EXISTS", line
    assert heard - delivered < 1.0, (heard - delivered, heard - start)
    r.send("DONE\r\n")
    assert r.until("i")[-1].startswith("i OK")


def test_idle_hears_every_file_of_a_burst(make_tern):
    """inotify is read in bursts (the loop pauses briefly after each read):
    files dropped while it pauses are heard when it listens again, and a
    lone one after the burst too."""
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1)])
    md = t.maildir(ALICE)
    r = Raw(t)
    r.cmd("l", "LOGIN alice@example.test alicepw")
    assert "* 1 EXISTS" in r.cmd("s", "SELECT INBOX")
    r.send("i IDLE\r\n")
    assert r.line().startswith("+ ")

    def drop(k):
        name = f"{int(time.time())}.M{k}P{os.getpid()}Q{k}.burst"
        with open(os.path.join(md, "tmp", name), "w") as fp:
            fp.write(f"Subject: burst {k}\n\nbody\n")
        os.rename(os.path.join(md, "tmp", name), os.path.join(md, "new", name))

    for k in range(20):   # back to back: most land inside a pause
        drop(k)

    def until_exists(n):
        deadline = time.time() + 5
        while time.time() < deadline:
            line = r.line(timeout=max(0.1, deadline - time.time()))
            if line == f"* {n} EXISTS":
                return
        raise AssertionError(f"no * {n} EXISTS")

    until_exists(21)
    time.sleep(0.05)   # past the pause: the loop is listening again
    drop(99)
    until_exists(22)
    r.send("DONE\r\n")
    assert r.until("i")[-1].startswith("i OK")


@pytest.mark.parametrize("line,expect", [
    ("", "* BAD"),
    ("a1 FROBNICATE", "a1 BAD"),
    ("a2 FETCH 1 (FLAGS", "a2 BAD"),
    ("a3 SELECT", "a3 BAD"),
    ("a4 FETCH 1:x FLAGS", "a4 BAD"),
    ("a5 FETCH 99 FLAGS", "a5 BAD"),
    ("a6 SEARCH FOO", "a6 BAD"),
    ("a7 STORE 1 FOO (\\Seen)", "a7 BAD"),
    ("a8 UID FROB 1", "a8 BAD"),
])
def test_bad_input(make_tern, line, expect):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1)])
    r = Raw(t)
    r.cmd("l", "LOGIN alice@example.test alicepw")
    r.cmd("s", "SELECT INBOX")
    r.send(line + "\r\n")
    got = r.line()
    assert got.startswith(expect), got
    assert r.cmd("z", "NOOP")[-1].startswith("z OK")


def test_commands_out_of_state_and_error_limit(make_tern):
    t = make_tern(services=SERVICES, config={"smtp": {"max_errors": "3"}})
    r = Raw(t)
    assert r.cmd("a", "SELECT INBOX")[-1].startswith("a BAD")
    assert r.cmd("b", "FETCH 1 FLAGS")[-1].startswith("b BAD")
    r.send("c BOGUS\r\n")
    assert r.line().startswith("c BAD")
    assert r.line().startswith("* BYE")


def test_logout_mid_literal_and_8bit(make_tern):
    t = make_tern(services=SERVICES)
    r = Raw(t)
    r.send("a LOGIN {5}\r\n")
    assert r.line().startswith("+ ")
    r.send("alice@example.test alicepw\r\n")
    # the literal took "alice"; the rest is the line after it: a bad command
    out = r.until("a")
    assert out[-1].startswith("a ")
    r.send("b NOOP \xff\r\n".encode("latin-1"))
    assert r.line().startswith("b BAD")
    assert r.cmd("c", "LOGOUT")[0].startswith("* BYE")


def test_enable_imap4rev2_esearch_and_closed(make_tern):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2)])
    r = Raw(t)
    r.cmd("l", "LOGIN alice@example.test alicepw")
    assert "* ENABLED IMAP4rev2" in r.cmd("e", "ENABLE IMAP4rev2")
    out = r.cmd("s", "SELECT INBOX")
    assert not any("RECENT" in l for l in out), out
    assert '* ESEARCH (TAG "q") ALL 1:2' in r.cmd("q", "SEARCH ALL")
    assert '* ESEARCH (TAG "u") UID COUNT 1' in r.cmd("u", "UID SEARCH RETURN (COUNT) 2")
    out = r.cmd("x", "EXAMINE Sent")
    assert "* OK [CLOSED] Previous mailbox closed" in out and out[-1].startswith("x OK [READ-ONLY]")
    assert r.cmd("y", "STORE 1 +FLAGS (\\Seen)")[-1].startswith("y BAD")   # Sent is empty
    assert r.cmd("z", "APPEND Sent {3+}\r\nab\r\n")[-1].startswith("z OK")
    assert r.cmd("w", "STORE 1 +FLAGS (\\Seen)")[-1].startswith("w NO [READ-ONLY]")


def test_idle_sees_other_sessions_flags_and_expunge(make_tern):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2)])
    a = Raw(t)
    a.cmd("l", "LOGIN alice@example.test alicepw")
    a.cmd("s", "SELECT INBOX")
    a.send("i IDLE\r\n")
    assert a.line().startswith("+ ")
    b = imaps(t)
    b.select("INBOX")
    b.store("2", "+FLAGS", "(\\Flagged)")
    # a selected first: the two are \Recent in a (RFC 3501 2.3.2)
    assert a.line() == "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))"
    b.store("1", "+FLAGS", "(\\Deleted)")
    assert a.line() == "* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))"
    b.expunge()
    assert a.line() == "* 1 EXPUNGE"
    a.send("DONE\r\n")
    assert a.until("i")[-1].startswith("i OK")
    b.logout()


NASTY = [
    "a FETCH 1 (BODY[1.2.3.4.5.6.7.8.9.10])", "a FETCH 1 (BODY[HEADER.FIELDS ()])",
    "a FETCH 1 (BODY[HEADER.FIELDS (A B C)]<0.0>)", "a FETCH 1 (BODY[]<99999999.5>)",
    "a FETCH 1 (BODY[TEXT]<0.1>)", "a FETCH * (BODY[1] BODY[1.MIME] BODY[2.HEADER])",
    "a FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE RFC822.HEADER RFC822.TEXT MODSEQ)",
    "a UID FETCH 4294967295:* (FLAGS)", "a UID FETCH 0 (FLAGS)", "a FETCH 1,1,1,1 FLAGS",
    "a STORE 1 +FLAGS (\\Bogus)", "a STORE 1 FLAGS.SILENT (\\Seen kw1 kw2 kw3)",
    "a STORE 1 -FLAGS \\Seen \\Flagged", "a SEARCH OR OR OR ALL", "a SEARCH (((((((ALL)))))))",
    "a SEARCH NOT NOT NOT NOT SEEN", "a SEARCH HEADER X-Nope \"\"", "a SEARCH CHARSET KOI8-R ALL",
    "a SEARCH BEFORE 31-Feb-2020", "a SEARCH UID 1:*,5,7:9 LARGER 4294967296",
    "a LIST \"\" \"%/%/%\"", "a LIST (SUBSCRIBED) \"\" * RETURN (STATUS (MESSAGES SIZE))",
    "a STATUS INBOX (MESSAGES BOGUS)", "a CREATE \"a/../b\"", "a CREATE \"\"", "a RENAME INBOX INBOX",
    "a RENAME Trash Trash/Sub", "a DELETE INBOX", "a COPY 1 Nope", "a MOVE 1:* INBOX",
    "a APPEND INBOX (\\Seen) \"bad date\" {1+}\r\nx", "a ID (\"name\" \"x\" \"version\")",
    "a ENABLE UTF8=ACCEPT CONDSTORE", "a NAMESPACE extra", "a EXPUNGE", "a UID EXPUNGE 1:*",
    "a CHECK", "a SELECT \"&Jjo-!\"", "a SELECT INBOX",
]


def test_nasty_commands_leave_the_session_working(make_tern):
    t = make_tern(services=SERVICES, config={"smtp": {"max_errors": "1000"}})
    multipart = ("From: a@b.test\r\nSubject: mp\r\nMIME-Version: 1.0\r\n"
                 "Content-Type: multipart/mixed; boundary=XX\r\n\r\npre\r\n--XX\r\n"
                 "Content-Type: text/plain\r\n\r\none\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\n"
                 "Subject: inner\r\n\r\ninner body\r\n--XX--\r\n")
    deliver(t, [multipart, msg(2)])
    r = Raw(t)
    r.cmd("l", "LOGIN alice@example.test alicepw")
    r.cmd("s", "SELECT INBOX")
    for c in NASTY:
        out = r.cmd("a", c)
        assert out[-1].split()[1] in ("OK", "NO", "BAD"), (c, out)
        assert r.cmd("n", "NOOP")[-1].startswith("n OK"), c
    out = r.cmd("f", "FETCH 1 (BODYSTRUCTURE BODY[2.HEADER] BODY[2.1])")
    text = "\n".join(out)
    assert '"mixed"' in text and '"rfc822"' in text.lower()
    assert "Subject: inner" in text and "inner body" in text

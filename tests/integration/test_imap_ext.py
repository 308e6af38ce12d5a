"""IMAP extensions against the real binary, by raw dialog and imaplib:
MULTIAPPEND (RFC 3502: several messages, all or none), BINARY (RFC 3516:
FETCH BINARY[]/BINARY.PEEK/BINARY.SIZE with base64 and quoted-printable
undone, literal8 when a NUL is inside, UNKNOWN-CTE, APPEND of a literal8),
UTF8=ACCEPT (RFC 6855: UTF-8 names both ways, APPEND UTF8 (~{n})), and
LIST-EXTENDED (RFC 5258: selection and return options, \\NonExistent,
RECURSIVEMATCH with CHILDINFO, bad options)."""
import base64
import os
import re
import shutil
import subprocess
import time

import pytest

from syscalls import strace_usable
from test_imap import ALICE, SERVICES, Raw, deliver, imaps, msg


def login(t):
    r = Raw(t)
    assert r.cmd("l", "LOGIN alice@example.test alicepw")[-1].startswith("l OK")
    return r


def read_literal(r, size):
    """size octets of a literal after its announcement line."""
    while len(r.buf) < size:
        r.buf += r.s.recv(65536)
    data, r.buf = r.buf[:size], r.buf[size:]
    return data


def folder_files(t, folder):
    d = os.path.join(t.maildir(ALICE), "." + folder if folder else "")
    return sorted(os.listdir(os.path.join(d, "cur"))), os.listdir(os.path.join(d, "tmp"))


def test_capabilities(make_tern):
    t = make_tern(services=SERVICES)
    c = imaps(t)
    for cap in ("MULTIAPPEND", "BINARY", "UTF8=ACCEPT", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH"):
        assert cap in c.capabilities, c.capabilities
    c.logout()


def test_multiappend_adds_all(make_tern):
    t = make_tern(services=SERVICES)
    r = login(t)
    m1, m2, m3 = (b"Subject: one\r\n\r\nfirst\r\n", b"Subject: two\r\n\r\nsecond\r\n",
                  b"Subject: three\r\n\r\n\0third\r\n")
    r.send(b"a APPEND Sent (\\Seen) {%d}\r\n" % len(m1))
    assert r.line().startswith("+ ")
    r.send(m1 + b' (\\Flagged) "05-Mar-2023 12:34:56 +0000" {%d}\r\n' % len(m2))
    assert r.line().startswith("+ ")
    r.send(m2 + b" ~{%d+}\r\n" % len(m3) + m3 + b"\r\n")
    out = r.until("a")
    m = re.match(r"a OK \[APPENDUID (\d+) 1:3\]", out[-1])
    assert m, out
    cur, tmp = folder_files(t, "Sent")
    assert len(cur) == 3 and tmp == [], (cur, tmp)
    assert sum(n.endswith(":2,S") for n in cur) == 1 and sum(n.endswith(":2,F") for n in cur) == 1
    c = imaps(t)
    c.select("Sent")
    typ, data = c.fetch("1:3", "(FLAGS INTERNALDATE BODY.PEEK[])")
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    assert bodies == [m1, m2, m3]
    heads = [d[0] for d in data if isinstance(d, tuple)]
    assert b'INTERNALDATE "05-Mar-2023 12:34:56 +0000"' in heads[1], heads
    c.logout()


def test_multiappend_is_all_or_none(make_tern):
    t = make_tern(services=SERVICES, config={"smtp": {"max_message_size": "4096"}})
    r = login(t)
    m1 = b"Subject: one\r\n\r\nfirst\r\n"
    # the second literal is over the limit: NO [TOOBIG] before its octets,
    # and the first message is not kept either
    r.send(b"a APPEND INBOX {%d}\r\n" % len(m1))
    assert r.line().startswith("+ ")
    r.send(m1 + b" {5000}\r\n")
    assert r.line().startswith("a NO [TOOBIG]")
    assert folder_files(t, "") == ([], [])
    # bad flags before the second one: BAD, nothing kept
    r.send(b"b APPEND INBOX {%d+}\r\n" % len(m1) + m1 + b" (\\Bogus) {3}\r\n")
    assert r.line().startswith("b BAD")
    assert folder_files(t, "") == ([], [])
    # junk after the last literal: BAD, nothing kept
    r.send(b"c APPEND INBOX {%d+}\r\n" % len(m1) + m1 + b" {3+}\r\nabc junk\r\n")
    assert r.until("c")[-1].startswith("c BAD")
    assert folder_files(t, "") == ([], [])
    # the session goes on, and a plain APPEND still works
    r.send(b"d APPEND INBOX {%d+}\r\n" % len(m1) + m1 + b"\r\n")
    assert r.until("d")[-1].startswith("d OK [APPENDUID ")
    assert len(folder_files(t, "")[0]) == 1
    assert r.cmd("e", "STATUS INBOX (MESSAGES)")[0] == "* STATUS INBOX (MESSAGES 1)"


PAYLOAD = bytes(range(256)) * 3          # NULs and 8-bit octets
QP_TEXT = "caf\u00e9 cr\u00e8me, a long line that the encoder folds somewhere near here.\r\nline 2\r\n"
MULTI = (b"From: a@b.test\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
         b"caf=C3=A9 cr=C3=A8me, a long line that the encoder folds somewhere ne=\r\n"
         b"ar here.   \r\nline 2\r\n"
         b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         + base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n")
         + b"--XX\r\nContent-Type: application/x-thing\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
         b"begin 644 x\r\n`\r\nend\r\n--XX--\r\n")


def test_fetch_binary_decodes_parts(make_tern):
    t = make_tern(services=SERVICES)
    deliver(t, [MULTI.decode("latin-1")])
    r = login(t)
    r.cmd("s", "SELECT INBOX")
    # quoted-printable part: decoded, CRLF line ends, padding dropped
    r.send("f FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])\r\n")
    head = r.line()
    m = re.match(r"\* 1 FETCH \(BINARY.SIZE\[1\] (\d+) BINARY\[1\] \{(\d+)\}$", head)
    assert m, head
    want = QP_TEXT.encode()[:-2]   # the CRLF before a boundary is the boundary's
    assert int(m.group(1)) == int(m.group(2)) == len(want)
    assert read_literal(r, len(want)) == want
    assert r.until("f")[-1].startswith("f OK")
    # base64 part with NULs: a literal8
    r.send("g FETCH 1 (BINARY.PEEK[2] BINARY.PEEK[2]<250.10>)\r\n")
    head = r.line()
    assert head == "* 1 FETCH (BINARY[2] ~{%d}" % len(PAYLOAD), head
    assert read_literal(r, len(PAYLOAD)) == PAYLOAD
    rest = r.line()
    assert rest == " BINARY[2]<250> ~{10}", rest
    assert read_literal(r, 10) == PAYLOAD[250:260]
    assert r.until("g")[-1].startswith("g OK")
    # an encoding tern does not know: NO [UNKNOWN-CTE]
    out = r.cmd("h", "FETCH 1 (BINARY.PEEK[3])")
    assert "* 1 FETCH (BINARY[3] NIL)" in out and out[-1].startswith("h NO [UNKNOWN-CTE]"), out
    # BINARY[] is the message as it is; BINARY (not .PEEK) sets \Seen
    r.send("i FETCH 1 (BINARY[])\r\n")
    head = r.line()
    n = int(re.search(r"\{(\d+)\}$", head).group(1))
    assert read_literal(r, n).endswith(MULTI[-40:])
    out = r.until("i")
    assert "\\Seen" in " ".join(out) and out[-1].startswith("i OK"), out
    # section-binary takes part numbers only
    assert r.cmd("j", "FETCH 1 (BINARY[1.MIME])")[-1].startswith("j BAD")
    assert r.cmd("k", "FETCH 1 (BINARY.SIZE[1]<0.5>)")[-1].startswith("k BAD")
    # imaplib reads it too
    c = imaps(t)
    c.select("INBOX")
    typ, data = c.fetch("1", "(BINARY.PEEK[1])")
    assert typ == "OK" and data[0][1] == want
    c.logout()


def test_append_literal8_keeps_nuls(make_tern):
    t = make_tern(services=SERVICES)
    r = login(t)
    body = b"Subject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\nbefore\0after\r\n"
    r.send(b"a APPEND INBOX ~{%d}\r\n" % len(body))
    assert r.line().startswith("+ ")
    r.send(body + b"\r\n")
    assert r.until("a")[-1].startswith("a OK [APPENDUID")
    r.cmd("s", "SELECT INBOX")
    r.send("f FETCH 1 (BINARY.PEEK[1] RFC822.SIZE)\r\n")
    head = r.line()
    assert head == "* 1 FETCH (BINARY[1] ~{14}", head
    assert read_literal(r, 14) == b"before\0after\r\n"
    assert r.line() == " RFC822.SIZE %d)" % len(body)


def test_utf8_accept_names_and_append(make_tern):
    t = make_tern(services=SERVICES)
    r = login(t)
    assert r.cmd("e", "ENABLE UTF8=ACCEPT")[0] == "* ENABLED UTF8=ACCEPT"
    name = "R\u00e9sum\u00e9s/\u65e5\u672c"
    r.send(f'c CREATE "{name}"\r\n'.encode())
    assert r.until("c")[-1].startswith("c OK")
    # kept in modified UTF-7 on disk, UTF-8 on the wire
    assert os.path.isdir(os.path.join(t.maildir(ALICE), ".R&AOk-sum&AOk-s.&ZeVnLA-"))
    r.send(b'l LIST "" "R*"\r\n')
    out = r.until("l")
    assert any(l.encode("latin-1").decode() .endswith(f'"/" "{name}"') for l in out if l.startswith("* LIST")), out
    r.send(f'st STATUS "{name}" (MESSAGES)\r\n'.encode())
    assert r.line().encode("latin-1").decode() == f'* STATUS "{name}" (MESSAGES 0)'
    r.until("st")
    # RFC 6855 4: APPEND mailbox UTF8 (~{n})
    body = "Subject: =?utf-8?q?x?=\r\nFrom: j\u00f6rg@b.test\r\n\r\nh\u00e9\r\n".encode()
    r.send(f'a APPEND "{name}" (\\Seen) UTF8 (~{{{len(body)}+}}\r\n'.encode() + body + b")\r\n")
    assert r.until("a")[-1].startswith("a OK [APPENDUID"), r.buf
    r.send(f'st2 STATUS "{name}" (MESSAGES)\r\n'.encode())
    assert r.line().endswith("(MESSAGES 1)")
    r.until("st2")
    # without ENABLE, the same name is modified UTF-7
    c = imaps(t)
    assert any(d.endswith(b'"/" "R&AOk-sum&AOk-s/&ZeVnLA-"') or d.endswith(b'"/" R&AOk-sum&AOk-s/&ZeVnLA-')
               for d in c.list('""', "R*")[1]), c.list('""', "R*")
    c.logout()


def lines(out, kind="LIST"):
    return [l for l in out if l.startswith(f"* {kind} ")]


def test_list_extended(make_tern):
    t = make_tern(services=SERVICES)
    r = login(t)
    for n in ("Work", "Work/A", "Work/B", "Play"):
        assert r.cmd("c", f"CREATE {n}")[-1].startswith("c OK")
    assert r.cmd("s", "SUBSCRIBE Work/B")[-1].startswith("s OK")
    assert r.cmd("s", "SUBSCRIBE Gone")[-1].startswith("s OK")      # no such mailbox
    # SUBSCRIBED selection: subscribed ones only, \Subscribed, \NonExistent
    out = lines(r.cmd("a", 'LIST (SUBSCRIBED) "" "*"'))
    names = [l.rsplit(" ", 1)[1] for l in out]
    assert "Work/B" in names and "Gone" in names and "Work" not in names and "Play" not in names, out
    assert all("\\Subscribed" in l for l in out), out
    assert any(l.endswith(" Gone") and "\\NonExistent" in l for l in out), out
    # RECURSIVEMATCH: Work is not subscribed but a child is: CHILDINFO
    out = lines(r.cmd("b", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"'))
    assert any(' Work ("CHILDINFO" ("SUBSCRIBED"))' in l for l in out), out
    assert not any(" Play" in l for l in out), out
    # SPECIAL-USE selection; several patterns, each mailbox once
    out = lines(r.cmd("c", 'LIST (SPECIAL-USE) "" "*"'))
    assert sorted(l.rsplit(" ", 1)[1] for l in out) == ["Archive", "Drafts", "Junk", "Sent", "Trash"], out
    out = lines(r.cmd("d", 'LIST "" ("Work*" "Work/%") RETURN (CHILDREN SUBSCRIBED SPECIAL-USE)'))
    assert sorted(l.rsplit(" ", 1)[1] for l in out) == ["Work", "Work/A", "Work/B"], out
    assert any(l.endswith(" Work/B") and "\\Subscribed" in l for l in out)
    assert any(l.endswith(" Work") and "\\HasChildren" in l for l in out)
    # RETURN (STATUS): a STATUS after each LIST line
    out = r.cmd("e", 'LIST "" "Play" RETURN (STATUS (MESSAGES UIDNEXT))')
    assert out[0].endswith(" Play") and out[1] == "* STATUS Play (MESSAGES 0 UIDNEXT 1)", out
    # bad options
    assert r.cmd("f", 'LIST (RECURSIVEMATCH) "" "*"')[-1].startswith("f BAD")
    assert r.cmd("g", 'LIST (BOGUS) "" "*"')[-1].startswith("g BAD")
    assert r.cmd("h", 'LIST "" "*" RETURN (BOGUS)')[-1].startswith("h BAD")
    # LSUB shows the subscription without a mailbox as \Noselect
    out = lines(r.cmd("i", 'LSUB "" "*"'), "LSUB")
    assert any(l.endswith(" Gone") and "\\Noselect" in l for l in out), out


def test_partial_fetch_across_line_ends(make_tern):
    """BODY[]<o.n> counts octets of the CRLF form, whatever the file has:
    every window over a file with bare LFs, CRLFs and a lone CR."""
    t = make_tern(services=SERVICES)
    raw = b"Subject: p\n\nab\ncd\r\nef\rgh\n\nij\n"
    c = imaps(t)   # the first login makes the Maildir
    with open(os.path.join(t.maildir(ALICE), "new", "1700000000.M1P1Q1.drop"), "wb") as f:
        f.write(raw)
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    c.select("INBOX")
    for o in range(len(crlf) + 1):
        for n in (1, 2, 3, 7):
            typ, data = c.fetch("1", f"(BODY.PEEK[]<{o}.{n}>)")
            got = data[0][1] if isinstance(data[0], tuple) else b""
            assert got == crlf[o:o + n], (o, n, got, crlf[o:o + n])
    c.logout()


def test_sync_tells_changes_mixed_with_new_mail(make_tern):
    """A session that did not look for a while hears every change, also
    when new mail came with them (the quick path of the sync covers only
    new mail alone)."""
    t = make_tern(services=SERVICES)
    deliver(t, [f"Subject: m{i}\r\n\r\nx\r\n" for i in range(3)])
    a = login(t)
    assert "* 3 EXISTS" in a.cmd("s", "SELECT INBOX")
    b = imaps(t)
    b.select("INBOX")
    # new mail alone
    assert b.append("INBOX", None, None, b"Subject: n1\r\n\r\nx\r\n")[0] == "OK"
    assert a.cmd("n1", "NOOP")[:-1] == ["* 4 EXISTS"]
    # a flag change and new mail
    b.store("2", "+FLAGS", "(\\Flagged)")
    assert b.append("INBOX", None, None, b"Subject: n2\r\n\r\nx\r\n")[0] == "OK"
    out = a.cmd("n2", "NOOP")[:-1]
    # a selected first: the first three are \Recent in a (RFC 3501 2.3.2)
    assert "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))" in out and "* 5 EXISTS" in out, out
    # an expunge and new mail (twice as many, so the count alone fools nobody)
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    for i in range(2):
        assert b.append("INBOX", None, None, b"Subject: n3\r\n\r\nx\r\n")[0] == "OK"
    out = a.cmd("n3", "NOOP")[:-1]
    assert "* 1 EXPUNGE" in out and "* 6 EXISTS" in out, out
    assert a.cmd("f", "FETCH 1:* (UID)")[:-1] == [f"* {i + 1} FETCH (UID {u})" for i, u in
                                                 enumerate([2, 3, 4, 5, 6, 7])]
    b.logout()


def test_select_of_an_open_folder_sees_what_just_changed(make_tern):
    """A second SELECT of a folder another session holds open takes the
    folder as it is in memory, after the change notices still queued: a
    file another program just dropped into new/ or renamed in cur/ is
    there, at once, every time."""
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1)])
    a = imaps(t)
    a.select("INBOX")                      # keeps INBOX open
    md = t.maildir(ALICE)
    for i in range(5):
        with open(os.path.join(md, "tmp", f"t{i}"), "w") as f:
            f.write(f"Subject: dropped {i}\n\nhi\n")
        os.rename(os.path.join(md, "tmp", f"t{i}"), os.path.join(md, "new", f"170000000{i}.M1P1Q{i}.other"))
        b = imaps(t)
        typ, data = b.select("INBOX")
        assert data == [str(2 + i).encode()], (i, data)
        b.logout()
    cur = os.path.join(md, "cur")
    name = [n for n in os.listdir(cur) if n.startswith("1700000003")][0]
    os.rename(os.path.join(cur, name), os.path.join(cur, name.split(":")[0] + ":2,F"))
    b = imaps(t)
    b.select("INBOX")
    typ, data = b.search(None, "FLAGGED")
    assert data == [b"5"], data
    b.logout()
    a.logout()


def test_imap_sockets_have_tcp_nodelay(make_tern, tmp_path):
    """The tagged reply after a FETCH's literals goes out at once: with
    Nagle it waited for the client's (delayed, up to 40 ms) ACK."""
    why = strace_usable()
    if why:
        pytest.skip(why)
    t = make_tern(services=SERVICES)
    out = tmp_path / "strace.txt"
    st = subprocess.Popen([shutil.which("strace") or "/usr/bin/strace", "-f", "-qq", "-e", "trace=setsockopt",
                           "-o", str(out), "-p", str(t.proc.pid)])
    text = ""
    try:
        # until strace has attached to the threads: connect again and again
        deadline = time.time() + 20
        while time.time() < deadline and text.count("TCP_NODELAY, [1]") < 2:
            for svc in ("imaps", "imap"):
                r = Raw(t, tls=svc == "imaps")
                assert r.greeting.startswith("* OK")
            time.sleep(0.1)
            text = out.read_text() if out.exists() else ""
    finally:
        st.terminate()
        st.wait(10)
    assert text.count("TCP_NODELAY, [1]") >= 2, text


def test_folder_kept_after_close_stays_true(make_tern):
    """A folder stays open (watched) after its last session closed it, for
    the next SELECT: what other programs did meanwhile is seen, and a
    DELETE or RENAME leaves no stale copy behind a name made again."""
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2)])
    c = imaps(t)
    assert c.select("INBOX")[1] == [b"2"]
    c.logout()                              # INBOX is kept now
    md = t.maildir(ALICE)
    cur = os.path.join(md, "cur")
    names = sorted(os.listdir(cur))
    os.unlink(os.path.join(cur, names[0]))                    # POP3 or mutt removed one
    os.rename(os.path.join(cur, names[1]), os.path.join(cur, names[1].split(":")[0] + ":2,FS"))
    with open(os.path.join(md, "new", "1800000000.M1P1Q1.other"), "w") as f:
        f.write("Subject: dropped\n\nhi\n")
    c = imaps(t)
    assert c.select("INBOX")[1] == [b"2"]
    typ, data = c.fetch("1:*", "(UID FLAGS)")
    # the dropped one is new to every session: \Recent here (RFC 3501 2.3.2)
    assert b"UID 2 FLAGS (\\Seen \\Flagged)" in data[0] and b"UID 3 FLAGS (\\Recent)" in data[1], data
    # a folder with mail, closed (kept), deleted and made again: empty,
    # under a new UIDVALIDITY
    assert c.create("Box")[0] == "OK"
    assert c.append("Box", None, None, b"Subject: in box\r\n\r\nx\r\n")[0] == "OK"
    c.select("Box")
    v1 = c.response("UIDVALIDITY")[1][0]
    c.select("INBOX")                       # Box is kept now
    assert c.delete("Box")[0] == "OK"
    assert c.create("Box")[0] == "OK"
    assert c.select("Box")[1] == [b"0"]
    assert c.response("UIDVALIDITY")[1][0] != v1
    # renamed away while kept: the new name has the mail, the old one none
    assert c.append("Box", None, None, b"Subject: in box\r\n\r\nx\r\n")[0] == "OK"
    c.select("INBOX")
    assert c.rename("Box", "Crate")[0] == "OK"
    assert c.create("Box")[0] == "OK"
    assert c.select("Box")[1] == [b"0"]
    assert c.select("Crate")[1] == [b"1"]
    c.logout()


def test_kept_folder_removed_by_another_program(make_tern):
    """A kept folder whose directory another program removed and made
    again is read afresh: the new directory's mail, and its changes."""
    t = make_tern(services=SERVICES)
    c = imaps(t)
    assert c.create("Box")[0] == "OK"
    assert c.append("Box", None, None, b"Subject: old\r\n\r\nx\r\n")[0] == "OK"
    assert c.select("Box")[1] == [b"1"]
    c.select("INBOX")                       # Box is kept now
    box = os.path.join(t.maildir(ALICE), ".Box")
    shutil.rmtree(box)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(box, sub))
    with open(os.path.join(box, "new", "1800000000.M1P1Q1.other"), "w") as f:
        f.write("Subject: new one\n\nhi\n")
    c.noop()
    typ, data = c.select("Box")
    assert data == [b"1"], data
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1].startswith(b"Subject: new one"), data
    with open(os.path.join(box, "new", "1800000001.M1P1Q2.other"), "w") as f:
        f.write("Subject: another\n\nhi\n")
    d = imaps(t)
    assert d.select("Box")[1] == [b"2"]     # watched again: seen at once
    d.logout()
    c.logout()

"""The users file as `tern user` and the server see it: comments, blank
lines and lines that do not parse survive every change byte for byte and
in order; both report bad lines with FILE:LINE and neither gives up."""
import os

from authutil import Dialog, b64

# Line numbers matter: the warnings name them.
MIXED = (b"# users of example.test\n"                       # 1
         b"\n"                                               # 2
         b"alice@example.test:{PLAIN}alicepw\n"              # 3
         b"this line has no colon\n"                         # 4 bad
         b"Bob@Example.test:{PLAIN}bobpw\r\n"                # 5 CRLF
         b"carol@example.test:{MD5}unknown-scheme\n"         # 6 unknown scheme
         b"../evil@example.test:{PLAIN}x\n"                  # 7 bad address
         b"dave@example.test:nobrace\n"                      # 8 bad
         b"  # indented, so not a comment\n"                 # 9 bad
         b"erin@example.test:{PLAIN}erinpw")                 # 10, no newline


def mixed_tern(make_tern, start=False):
    t = make_tern(start=False, users={})
    with open(t.users_path, "wb") as f:
        f.write(MIXED)
    os.chmod(t.users_path, 0o644)
    if start:
        t.start()
    return t


def content(t):
    with open(t.users_path, "rb") as f:
        return f.read()


def mode(t):
    return os.stat(t.users_path).st_mode & 0o777


def test_add_keeps_every_other_line(make_tern):
    t = mixed_tern(make_tern)
    r = t.cli("user", "add", "frank@example.test", "--scheme", "plain", input="frankpw\n")
    assert r.returncode == 0, r.stderr
    # The unterminated last line gets its newline, nothing else changes.
    assert content(t) == MIXED + b"\nfrank@example.test:{PLAIN}frankpw\n"
    assert mode(t) == 0o600
    for line in (4, 7, 8, 9):
        assert f"{t.users_path}:{line}:" in r.stderr, r.stderr
    assert f"{t.users_path}:6: unknown scheme" in r.stderr, r.stderr
    assert f"{t.users_path}:3:" not in r.stderr and f"{t.users_path}:5:" not in r.stderr
    assert t.cli("user", "list").stdout.split() == ["alice@example.test", "bob@example.test",
                                                    "carol@example.test", "erin@example.test",
                                                    "frank@example.test"]


def test_passwd_changes_only_that_line(make_tern):
    t = mixed_tern(make_tern)
    r = t.cli("user", "passwd", "bob@example.test", "--scheme", "plain", input="newbob\n")
    assert r.returncode == 0, r.stderr
    assert content(t) == MIXED.replace(b"Bob@Example.test:{PLAIN}bobpw\r\n",
                                       b"bob@example.test:{PLAIN}newbob\n")
    r = t.cli("user", "passwd", "erin@example.test", "--scheme", "plain", input="newerin\n")
    assert r.returncode == 0, r.stderr
    assert content(t).endswith(b"dave@example.test:nobrace\n  # indented, so not a comment\n"
                               b"erin@example.test:{PLAIN}newerin\n")
    assert content(t).startswith(b"# users of example.test\n\nalice@example.test:{PLAIN}alicepw\n"
                                 b"this line has no colon\n")


def test_del_changes_only_that_line(make_tern):
    t = mixed_tern(make_tern)
    r = t.cli("user", "del", "alice@example.test")
    assert r.returncode == 0, r.stderr
    assert content(t) == MIXED.replace(b"alice@example.test:{PLAIN}alicepw\n", b"")
    assert mode(t) == 0o600
    # A bad line that names a user is not that user's line: nothing to delete.
    before = content(t)
    r = t.cli("user", "del", "dave@example.test")
    assert r.returncode != 0 and "does not exist" in r.stderr
    assert content(t) == before


def test_server_logs_bad_lines_and_serves_the_rest(make_tern):
    t = mixed_tern(make_tern, start=True)
    log = t.wait_log("event=reload reason=start users=4")
    for line in (4, 7, 8, 9):
        assert f"event=users_bad_line level=warning file={t.users_path} line={line} " in log, log
    assert "line=6 " not in log   # an unknown scheme is found when the user logs in
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0bob@example.test\0bobpw")).startswith("235")
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0erin@example.test\0erinpw")).startswith("235")
    # A change by `tern user` is re-read, and the bad lines are still reported.
    r = t.cli("user", "passwd", "erin@example.test", "--scheme", "plain", input="erin2\n")
    assert r.returncode == 0, r.stderr
    log = t.wait_log("event=reload reason=users_file_changed users=4")
    assert log.count(f"file={t.users_path} line=4 ") == 2
    d = Dialog(t.port())
    d.cmd("EHLO x")
    assert d.cmd("AUTH PLAIN " + b64("\0erin@example.test\0erin2")).startswith("235")

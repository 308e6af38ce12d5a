"""`tern sendmail`, run as `sendmail` and `mailq` through symlinks, the way
user agents call it: recipients, -t, -i, -f, -F, -bs, -bp, -q, exit codes."""
import os
import subprocess

import pytest

from conftest import TERN_BIN, free_port

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 64, 65, 67, 75


@pytest.fixture
def bindir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("sendmail", "mailq"):
        os.symlink(TERN_BIN, d / name)
    return d


def run(bindir, t, args, data=b"", prog="sendmail"):
    env = dict(os.environ, TERN_CONFIG=t.conf_path)
    return subprocess.run([str(bindir / prog), *args], input=data, capture_output=True, env=env, timeout=30)


def msg_of(t, addr, n=1):
    return t.wait_messages(addr, n)[n - 1].decode()


def test_argv_recipients_and_from_added(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["alice@example.test", "bob@example.test"], b"Subject: hi\n\nhello there\n")
    assert r.returncode == 0, r.stderr
    for who in ("alice@example.test", "bob@example.test"):
        m = msg_of(t, who)
        assert "Subject: hi\n" in m
        assert "\nhello there\n" in m
        assert "\nFrom: " in m   # added, as none was given


def test_unqualified_recipient(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["alice"], b"Subject: short\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert "Subject: short" in msg_of(t, "alice@example.test")


def test_t_reads_headers_and_strips_bcc(make_tern, bindir):
    t = make_tern()
    data = (b"From: Carol <carol@example.test>\n"
            b"To: Alice <alice@example.test>\n"
            b"Bcc: bob@example.test,\n"
            b"  hidden-continued@example.test\n"
            b"Subject: t-mode\n\nbody\n")
    r = run(bindir, t, ["-t"], data)
    # hidden-continued is no user: the whole message is refused (67)
    assert r.returncode == EX_NOUSER, r.stderr
    data = data.replace(b",\n  hidden-continued@example.test", b"")
    r = run(bindir, t, ["-t"], data)
    assert r.returncode == 0, r.stderr
    for who in ("alice@example.test", "bob@example.test"):
        m = msg_of(t, who)
        assert "Subject: t-mode" in m
        assert "Bcc" not in m and "bcc" not in m.lower()
        assert "From: Carol <carol@example.test>" in m
    assert len(t.messages("alice@example.test")) == 1


def test_t_group_and_cc(make_tern, bindir):
    t = make_tern()
    data = b"To: friends: alice@example.test;\nCc: \"Bob, B.\" <bob@example.test> (comment)\n\nx\n"
    r = run(bindir, t, ["-t"], data)
    assert r.returncode == 0, r.stderr
    msg_of(t, "alice@example.test")
    msg_of(t, "bob@example.test")


def test_lone_dot_ends_input_without_i(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["alice@example.test"], b"Subject: dot\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    m = msg_of(t, "alice@example.test")
    assert "before" in m and "after" not in m


@pytest.mark.parametrize("flag", ["-i", "-oi"])
def test_i_keeps_lone_dot(make_tern, bindir, flag):
    t = make_tern()
    r = run(bindir, t, [flag, "alice@example.test"], b"Subject: dot\n\nbefore\n.\nafter\n..two\n.three\n")
    assert r.returncode == 0, r.stderr
    m = msg_of(t, "alice@example.test")
    # dot-stuffed on the wire, unstuffed on arrival: the lines as given
    assert "\nbefore\n.\nafter\n..two\n.three\n" in m


def test_f_sets_envelope_sender(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["-f", "list-bounces@example.test", "alice@example.test"], b"Subject: f\n\nx\n")
    assert r.returncode == 0, r.stderr
    m = msg_of(t, "alice@example.test")
    assert m.startswith("Return-Path: <list-bounces@example.test>")
    assert "From: list-bounces@example.test" in m


def test_F_full_name(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["-F", "Jane Q. Doe", "-fjane@example.test", "alice@example.test"], b"Subject: F\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert 'From: "Jane Q. Doe" <jane@example.test>' in msg_of(t, "alice@example.test")
    # an existing From: is left alone
    r = run(bindir, t, ["-F", "Ignored", "alice@example.test"], b"From: me@example.test\nSubject: F2\n\nx\n")
    assert r.returncode == 0, r.stderr
    m = msg_of(t, "alice@example.test", 2)
    assert "From: me@example.test" in m and "Ignored" not in m


def test_body_without_headers(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["alice@example.test"], b"just a line of text\nand another\n")
    assert r.returncode == 0, r.stderr
    m = msg_of(t, "alice@example.test")
    assert "\n\njust a line of text\nand another\n" in m


def test_crlf_input(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["alice@example.test"], b"Subject: crlf\r\n\r\nline\r\n")
    assert r.returncode == 0, r.stderr
    assert "Subject: crlf\n\nline\n" in msg_of(t, "alice@example.test")


def test_bs_smtp_dialog(make_tern, bindir):
    t = make_tern()
    dialog = (b"EHLO ua.test\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
              b"DATA\r\nSubject: via -bs\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    r = run(bindir, t, ["-bs"], dialog)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    finals = [l[:3] for l in out.split("\r\n") if len(l) > 3 and l[3] == " "]
    assert finals == ["220", "250", "250", "250", "354", "250", "221"], out
    assert "Subject: via -bs" in msg_of(t, "bob@example.test")


def test_bs_bare_lf(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["-bs"], b"HELO ua.test\nMAIL FROM:<a@example.test>\nRCPT TO:<alice@example.test>\n"
                                b"DATA\nSubject: lf\n\nx\n.\nQUIT\n")
    assert r.returncode == 0
    assert "Subject: lf" in msg_of(t, "alice@example.test")


def test_bp_and_mailq(make_tern, bindir):
    closed = free_port()
    t = make_tern(config={"relay": {"smarthost": f"[127.0.0.1]:{closed}"}})
    for prog, args in (("sendmail", ["-bp"]), ("mailq", [])):
        r = run(bindir, t, args, prog=prog)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().strip() == "Mail queue is empty"
    r = run(bindir, t, ["-f", "carol@example.test", "far@remote.test"], b"Subject: q\n\nx\n")
    assert r.returncode == 0, r.stderr
    qid = t.cli("queue", "list").stdout.split()[0]
    for prog, args in (("sendmail", ["-bp"]), ("mailq", [])):
        out = run(bindir, t, args, prog=prog).stdout.decode()
        lines = out.splitlines()
        assert lines[0].startswith("-Queue ID-")
        assert lines[1].startswith(qid) and lines[1].rstrip().endswith("carol@example.test")
        assert any(l.strip() == "far@remote.test" for l in lines)
        assert lines[-1].startswith("-- ") and lines[-1].endswith("in 1 Request.")


def test_q_flushes(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["-q"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().startswith("flushed ")
    r = run(bindir, t, ["-qRremote.test"])
    assert r.returncode == 0, r.stderr


def test_server_down_tempfail(make_tern, bindir):
    t = make_tern(start=False)
    r = run(bindir, t, ["alice@example.test"], b"Subject: x\n\nx\n")
    assert r.returncode == EX_TEMPFAIL
    assert b"cannot reach the mail server" in r.stderr
    assert run(bindir, t, ["-q"]).returncode == EX_TEMPFAIL


def test_unknown_user_nouser_and_nothing_sent(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["alice@example.test", "nobody@example.test"], b"Subject: x\n\nx\n")
    assert r.returncode == EX_NOUSER
    assert b"nobody@example.test" in r.stderr
    assert b"550" in r.stderr
    # all or nothing: alice got no copy
    r = run(bindir, t, ["alice@example.test"], b"Subject: second\n\nx\n")
    assert r.returncode == 0
    assert "Subject: second" in msg_of(t, "alice@example.test")
    assert len(t.messages("alice@example.test")) == 1


@pytest.mark.parametrize("args,data", [([], b"Subject: x\n\nx\n"),
                                       (["-Z"], b""),
                                       (["-f"], b""),
                                       (["-t"], b"Subject: no one\n\nx\n")])
def test_usage_errors(make_tern, bindir, args, data):
    # refused before any connection: no server needed
    t = make_tern(start=False)
    r = run(bindir, t, args, data)
    assert r.returncode == EX_USAGE, (r.returncode, r.stderr)


def test_bad_header_address(make_tern, bindir):
    t = make_tern()
    r = run(bindir, t, ["-t"], b"To: <unclosed@example.test\n\nx\n")
    assert r.returncode == EX_DATAERR


def test_tern_sendmail_subcommand(make_tern):
    t = make_tern()
    r = subprocess.run([TERN_BIN, "sendmail", "-C", t.conf_path, "alice@example.test"],
                       input=b"Subject: sub\n\nx\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Subject: sub" in msg_of(t, "alice@example.test")

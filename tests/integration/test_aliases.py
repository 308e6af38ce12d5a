"""The aliases file as the server reads it: lines it cannot use are
logged (file, line, why) and skipped, the others work; an edit takes
effect without a restart or SIGHUP; a pipe target is refused."""
import os
import time

from smtpraw import Raw, message


def start_with_aliases(make_tern, text):
    t = make_tern(start=False)
    path = os.path.join(t.base, "aliases")
    with open(path, "w") as f:
        f.write(text)
    t.sections.update({"aliases": {"file": path}})
    t.write_config()
    t.start()
    return t, path


def rcpt_code(t, addr):
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        code, _ = c.cmd(f"RCPT TO:<{addr}>")
        c.cmd("QUIT", 221)
        return code


def test_bad_lines_logged_and_skipped(make_tern):
    t, path = start_with_aliases(make_tern, "# staff\n"
                                 "team: alice@example.test, bob\n"
                                 "root: |/bin/sh -c 'touch /tmp/pwned'\n"
                                 "this line has no colon\n"
                                 "sales: bob, /var/mail/sales\n")
    log = t.log()
    assert f"event=aliases_bad_line level=warning file={path} line=3 " \
           "error=\"pipes, files and :include: are not supported\"" in log
    assert f"event=aliases_bad_line level=warning file={path} line=4 " \
           "error=\"expected name: target, target\"" in log
    assert f"file={path} line=5 " in log
    assert "aliases=1" in log
    assert rcpt_code(t, "team@example.test") == 250
    assert rcpt_code(t, "root@example.test") == 550
    assert rcpt_code(t, "sales@example.test") == 550
    assert not os.path.exists("/tmp/pwned")


def test_edit_takes_effect_without_restart(make_tern):
    t, path = start_with_aliases(make_tern, "team: alice@example.test\n")
    assert rcpt_code(t, "staff@example.test") == 550
    time.sleep(0.01)   # a new modification time, even on a coarse clock
    with open(path + ".new", "w") as f:
        f.write("team: alice@example.test\nstaff: bob@example.test\n")
    os.rename(path + ".new", path)
    t.wait_log("event=reload reason=aliases_file_changed")
    assert rcpt_code(t, "staff@example.test") == 250
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send_mail("a@remote.test", ["staff@example.test"], message("to the staff"))
    assert "Subject: to the staff" in t.wait_messages("bob@example.test", 1)[0].decode()


def test_missing_file_logged(make_tern):
    t = make_tern(start=False)
    path = os.path.join(t.base, "no-such-aliases")
    t.sections.update({"aliases": {"file": path}})
    t.write_config()
    t.start()
    assert f"event=aliases_unreadable level=warning file={path} error=\"No such file or directory\"" in t.log()
    with open(path, "w") as f:
        f.write("staff: bob@example.test\n")
    t.wait_log("event=reload reason=aliases_file_changed")
    assert rcpt_code(t, "staff@example.test") == 250

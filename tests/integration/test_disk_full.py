"""A full disk, on a small tmpfs: the client is told 452 4.3.1 (RFC 5321
4.2.2 "insufficient system storage", RFC 3463 X.3.1 "mail system full"), a
transient reply so that it keeps the message and tries later; never a 250
for a message that is then lost; no delivered file cut short; the service
goes on and accepts mail again as soon as there is room.  And the mail file
system alone full while mail waits in the queue: the delivery is deferred,
the message stays queued and arrives after space returns.

The tests mount tmpfs file systems (root only) and are skipped where that
is not allowed.
"""
import os
import subprocess

import pytest

from conftest import Dnsmasq, free_port
from mailcheck import big_message, delivered, mx_subjects
from smtpraw import Raw, wait_for
from test_outbound import Receiver


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip() or p.returncode}): needs root")


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture
def mounts():
    made = []

    def mount(path, size):
        mount_tmpfs(path, size)
        made.append(path)
    yield mount
    for p in reversed(made):
        umount(p)


def send(t, rcpts, subject, kib):
    """(code, enhanced status) of the reply to the message, or of the
    first command that was refused."""
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        code, lines = c.cmd("MAIL FROM:<sender@example.test>")
        if code != 250:
            return code, lines[-1][4:].split(" ")[0]
        for r in rcpts:
            code, lines = c.cmd(f"RCPT TO:<{r}>")
            if code != 250:
                return code, lines[-1][4:].split(" ")[0]
        code, lines = c.cmd("DATA")
        if code != 354:
            return code, lines[-1][4:].split(" ")[0]
        c.send(big_message(subject, kib) + ".\r\n")
        code, lines = c.expect()
        c.cmd("QUIT", 221)
        return code, lines[-1][4:].split(" ")[0]


def fill(path):
    """Fill the file system holding path; returns the filler's name."""
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while os.write(fd, b"\0" * 65536) > 0:
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_full_state_dir_452_and_recovery(make_tern, mounts):
    t = make_tern(start=False, config={"queue": {"retry": "1s"}})
    with open(t.users_path) as f:
        users = f.read()
    mounts(t.state, "2m")
    with open(t.users_path, "w") as f:
        f.write(users)
    os.chmod(t.users_path, 0o600)
    t.start()

    acked, refused = [], []
    for i in range(40):
        subject = f"m{i}"
        code, enh = send(t, ["alice@example.test"], subject, 96)
        if code == 250:
            acked.append(subject)
        else:
            assert (code, enh) == (452, "4.3.1"), (subject, code, enh)
            refused.append(subject)
            if len(refused) >= 3:
                break
    assert acked, "nothing fitted on 2 MiB"
    assert len(refused) >= 3, f"the disk never filled: {len(acked)} accepted"
    # every 250 is delivered whole or waits in the queue (the Maildir
    # copy did not fit, the queue file did); nothing refused is anywhere
    msgdir = os.path.join(t.state, "queue", "msg")

    def queued():
        return [n for n in os.listdir(msgdir) if len(n) == 16]
    assert wait_for(lambda: len(delivered(t, "alice@example.test")) + len(queued()) == len(acked), 20), \
        (delivered(t, "alice@example.test"), queued(), acked)
    seen = delivered(t, "alice@example.test")
    assert set(seen) <= set(acked)
    # still serving while full
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("NOOP", 250)
    # space returns (the user fetched the mail): what waited is delivered,
    # and new mail is accepted and delivered again
    d = os.path.join(t.maildir("alice@example.test"), "new")
    for n in os.listdir(d):
        os.unlink(os.path.join(d, n))
    assert wait_for(lambda: queued() == [], 30), queued()
    seen += delivered(t, "alice@example.test")
    assert sorted(seen) == sorted(acked)
    code, enh = send(t, ["alice@example.test"], "after", 96)
    assert (code, enh) == (250, "2.0.0")
    assert wait_for(lambda: "after" in delivered(t, "alice@example.test"), 20)
    assert "event=queue_error" in t.log() or "Maildir write failed" in t.log()


def test_full_state_dir_remote_mail_never_lost(make_tern, mounts):
    """Queued (remote) mail on a full queue file system: 452 4.3.1 or a
    250 that reaches the MX, whole."""
    port = free_port("127.0.0.2")
    dns = Dnsmasq(["--local=/test/", "--mx-host=remote.test,mx.remote.test,10",
                   "--host-record=mx.remote.test,127.0.0.2"])
    rx = Receiver("127.0.0.2", port)
    try:
        t = make_tern(start=False, config={"dns": {"servers": f"127.0.0.1:{dns.port}"},
                                           "delivery": {"remote_port": str(port)},
                                           "queue": {"retry": "1s"}})
        with open(t.users_path) as f:
            users = f.read()
        mounts(t.state, "2m")
        with open(t.users_path, "w") as f:
            f.write(users)
        filler = fill(t.state)
        os.truncate(filler, os.path.getsize(filler) - 700 * 1024)
        t.start()
        acked, refused = [], []
        for i in range(20):
            code, enh = send(t, ["carol@remote.test"], f"r{i}", 96)
            if code == 250:
                acked.append(f"r{i}")
            else:
                assert (code, enh) == (452, "4.3.1"), (code, enh)
                refused.append(f"r{i}")
                if len(refused) >= 3:
                    break
        assert acked and refused, (acked, refused)

        def arrived():
            return [subj for subj, _ in mx_subjects(rx)]
        assert wait_for(lambda: set(arrived()) >= set(acked), 30), (arrived(), acked, t.log()[-3000:])
        assert not set(arrived()) & set(refused)
        os.unlink(filler)
        assert send(t, ["carol@remote.test"], "after", 96) == (250, "2.0.0")
        assert wait_for(lambda: "after" in arrived(), 30)
    finally:
        rx.stop()
        dns.stop()


def test_full_mail_fs_defers_then_delivers(make_tern, mounts):
    t = make_tern(start=False, config={"queue": {"retry": "1s"}})
    mail = os.path.join(t.state, "mail")
    mounts(mail, "1m")
    filler = fill(mail)
    t.start()
    code, enh = send(t, ["alice@example.test"], "waits", 64)
    assert (code, enh) == (250, "2.0.0")    # the queue has room
    t.wait_log("status=deferred")
    msgdir = os.path.join(t.state, "queue", "msg")
    queued = [n for n in os.listdir(msgdir) if len(n) == 16]
    assert len(queued) == 1, queued
    assert delivered(t, "alice@example.test") == []
    # still full: later tries defer again and keep it
    t.wait_log("status=deferred", 2, timeout=20)
    assert [n for n in os.listdir(msgdir) if len(n) == 16] == queued
    os.unlink(filler)
    assert wait_for(lambda: delivered(t, "alice@example.test") == ["waits"], 30), t.log()[-2000:]
    assert wait_for(lambda: [n for n in os.listdir(msgdir) if len(n) == 16] == [], 20)
    tmp = os.path.join(t.maildir("alice@example.test"), "tmp")
    assert not os.path.isdir(tmp) or all(os.path.getsize(os.path.join(tmp, n)) == 0 for n in os.listdir(tmp))

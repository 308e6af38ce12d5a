"""The message path after DATA, end to end: the Delivered-To loop check,
Delivered-To written on local delivery, the notices (DSNs) that every path
of delivery owes (all-local mail straight into the Maildirs, mail through
the scheduler, many recipients, a notice that could not be queued at
first), and all-local mail written once into its mailboxes (copies made
from the first, the queue used when a mailbox fails, nothing left behind
by an abandoned message)."""
import email
import email.policy
import os
import time

from conftest import free_port
from smtpraw import wait_for

USERS = {f"{u}@example.test": f"{u}pw" for u in ("alice", "bob", "carol", "dave", "erin", "frank")}


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def status_groups(msg):
    """The per-recipient groups of a notice's message/delivery-status part."""
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            return [dict(g.items()) for g in part.get_payload()[1:]]
    raise AssertionError("no message/delivery-status part:\n" + msg.as_string())


def notices(t, addr="alice@example.test"):
    return [parse(m) for m in t.messages(addr) if b"multipart/report" in m]


def send(t, rcpts, body, sender="alice@example.test", rcpt_options=()):
    with t.smtp() as c:
        c.ehlo()
        assert c.mail(sender)[0] == 250
        for r in rcpts:
            code, msg = c.rcpt(r, list(rcpt_options))
            assert code == 250, msg
        return c.data(body)


def test_local_copy_carries_delivered_to(make_tern):
    t = make_tern(users=USERS)
    code, _ = send(t, ["bob@example.test"], b"Subject: hi\r\n\r\nbody\r\n")
    assert code == 250
    (m,) = t.wait_messages("bob@example.test", 1)
    top = m.split(b"\n")[:2]
    assert top == [b"Return-Path: <alice@example.test>", b"Delivered-To: bob@example.test"]


def test_delivered_to_loop_refused(make_tern):
    """A copy that comes back with the recipient's Delivered-To: is a loop."""
    t = make_tern(users=USERS)
    with t.smtp() as c:
        c.ehlo()
        c.mail("alice@example.test")
        c.rcpt("bob@example.test")
        code, msg = c.data(b"Delivered-To: Bob@Example.test\r\nSubject: again\r\n\r\nbody\r\n")
        assert (code, msg.split()[0]) == (554, b"5.4.6"), msg
        assert b"<bob@example.test>" in msg
        # the session goes on
        assert c.noop()[0] == 250
    t.wait_log('event=loop queue=')
    assert t.messages("bob@example.test") == []


def test_delivered_to_loop_one_recipient_bounced(make_tern):
    """The looping recipient gets a bounce with 5.4.6; the others their copy."""
    t = make_tern(users=USERS)
    code, msg = send(t, ["bob@example.test", "carol@example.test"],
                     b"Subject: fwd\r\nDelivered-To: carol@example.test\r\n\r\n"
                     b"Delivered-To: bob@example.test\r\n")
    assert code == 250, msg
    t.wait_messages("bob@example.test", 1)
    (n,) = [parse(m) for m in t.wait_messages("alice@example.test", 1)]
    (g,) = status_groups(n)
    assert g["Final-Recipient"] == "rfc822; carol@example.test"
    assert g["Action"] == "failed" and g["Status"] == "5.4.6"
    assert t.messages("carol@example.test") == []


def test_all_local_notify_success_gets_notice(make_tern):
    """All-local mail goes straight into the Maildirs; it owes the same
    success notice as mail that went through the queue."""
    t = make_tern(users=USERS)
    code, msg = send(t, ["bob@example.test"], b"Subject: dsn\r\n\r\nbody\r\n",
                     rcpt_options=["NOTIFY=SUCCESS"])
    assert code == 250, msg
    assert "path=direct" in t.wait_log("event=queued")
    t.wait_messages("bob@example.test", 1)
    (n,) = [parse(m) for m in t.wait_messages("alice@example.test", 1)]
    (g,) = status_groups(n)
    assert g["Final-Recipient"] == "rfc822; bob@example.test"
    assert g["Action"] == "delivered" and g["Status"] == "2.0.0"


def reported(t, n_rcpts, addr="alice@example.test", timeout=30):
    """Wait until the notices to addr report n_rcpts recipients; returns the
    groups of all of them."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        groups = [g for n in notices(t, addr) for g in status_groups(n)]
        if len(groups) >= n_rcpts:
            return groups
        time.sleep(0.05)
    raise AssertionError(f"notices report {len(groups)} of {n_rcpts} recipients\n" + t.log()[-3000:])


FIVE = ["bob@example.test", "carol@example.test", "dave@example.test", "erin@example.test",
        "frank@example.test"]


def test_five_success_notices_all_local(make_tern):
    t = make_tern(users=USERS)
    code, msg = send(t, FIVE, b"Subject: five\r\n\r\nbody\r\n", rcpt_options=["NOTIFY=SUCCESS"])
    assert code == 250, msg
    groups = reported(t, 5)
    assert sorted(g["Final-Recipient"] for g in groups) == sorted(f"rfc822; {a}" for a in FIVE)
    assert all(g["Action"] == "delivered" for g in groups)
    # grouped per kind: one notice for the five
    assert len(notices(t)) == 1


def test_five_success_notices_through_the_scheduler(make_tern):
    """Mixed with a remote recipient (which waits at a closed smarthost), the
    local ones are delivered by the scheduler: every one is reported (it
    used to stop at 3 notices of one recipient each)."""
    t = make_tern(users=USERS, config={"relay": {"smarthost": f"[127.0.0.1]:{free_port()}"},
                                       "queue": {"retry": "1h"}})
    code, msg = send(t, FIVE + ["x@remote.test"], b"Subject: five\r\n\r\nbody\r\n",
                     rcpt_options=["NOTIFY=SUCCESS"])
    assert code == 250, msg
    groups = reported(t, 5)
    assert sorted(g["Final-Recipient"] for g in groups) == sorted(f"rfc822; {a}" for a in FIVE)
    assert len(notices(t)) == 1


def test_notice_not_lost_when_it_cannot_be_queued(make_tern):
    """A success notice whose queue file cannot be written is owed still:
    the message stays in the queue until the notice is committed (it used
    to be marked sent, and the message removed, before the write)."""
    t = make_tern(users=USERS, config={"queue": {"retry": "1s"}})
    # bob's mailbox cannot be written at first: the message is queued
    bob_dir = os.path.join(t.state, "mail", "example.test", "bob")
    os.makedirs(bob_dir)
    with open(os.path.join(bob_dir, "Maildir"), "w") as f:
        f.write("not a directory\n")
    code, msg = send(t, ["bob@example.test"], b"Subject: owed\r\n\r\nbody\r\n",
                     rcpt_options=["NOTIFY=SUCCESS"])
    assert code == 250, msg
    t.wait_log("status=deferred")
    # now the queue cannot take a new file (its tmp/ is not a directory),
    # and then bob's mailbox works again
    qtmp = os.path.join(t.state, "queue", "tmp")
    # moved aside in one step: the server may be making a file in it now
    # (rmtree then fails with ENOTEMPTY)
    os.rename(qtmp, qtmp + ".aside")
    with open(qtmp, "w") as f:
        f.write("in the way\n")
    os.remove(os.path.join(bob_dir, "Maildir"))
    t.wait_log("event=dsn_error")
    t.wait_messages("bob@example.test", 1)
    assert t.messages("alice@example.test") == []
    # the queue recovers: the owed notice is sent
    os.remove(qtmp)
    os.mkdir(qtmp, 0o700)
    (n,) = [parse(m) for m in t.wait_messages("alice@example.test", 1)]
    (g,) = status_groups(n)
    assert g["Final-Recipient"] == "rfc822; bob@example.test" and g["Action"] == "delivered"
    t.wait_log("event=removed queue=")


# ---- all-local mail written once ------------------------------------------------

def queue_files_holding(t, marker):
    """Files under the queue directory whose bytes contain marker."""
    found = []
    for root, _, names in os.walk(os.path.join(t.state, "queue")):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                if marker in f.read():
                    found.append(os.path.join(root, n))
    return found


def check_maildir_name(path, data):
    size = int(path.split(",S=")[1].split(",")[0])
    vsize = int(path.split(",W=")[1].split(":")[0])
    assert size == len(data)
    assert vsize == len(data) + data.count(b"\n")


def prime_mailboxes(t, addrs):
    """Deliver one message to each address, so that their Maildirs exist."""
    code, msg = send(t, addrs, b"Subject: prime\r\n\r\nprime\r\n")
    assert code == 250, msg
    for a in addrs:
        t.wait_messages(a, 1)


def test_all_local_written_once_into_the_mailboxes(make_tern):
    """All-local mail streams into its first recipient's Maildir file; the
    others' copies come from that file: no copy of the message passes
    through the queue, and every copy is whole and sized in its name."""
    t = make_tern(users=USERS)
    rcpts = ["bob@example.test", "carol@example.test", "dave@example.test"]
    prime_mailboxes(t, rcpts)
    marker = b"written-once-7f3a9c"
    body = b"Subject: once\r\n\r\n" + b"".join(b"%s line %d\r\n" % (marker, i) for i in range(3000))
    code, msg = send(t, rcpts, body)
    assert code == 250, msg
    assert t.log().count("path=direct") == 2
    expected_body = body.replace(b"\r\n", b"\n")
    for a in rcpts:
        msgs = t.wait_messages(a, 2)
        d = os.path.join(t.maildir(a), "new")
        names = sorted(os.listdir(d), key=lambda n: os.path.getmtime(os.path.join(d, n)))
        data = [m for m in msgs if marker in m][0]
        assert data.startswith(b"Return-Path: <alice@example.test>\nDelivered-To: " + a.encode() + b"\n")
        assert data.endswith(expected_body)
        path = [os.path.join(d, n) for n in names if open(os.path.join(d, n), "rb").read() == data][0]
        check_maildir_name(path, data)
        assert os.listdir(os.path.join(t.maildir(a), "tmp")) == []
    assert queue_files_holding(t, marker) == []


def test_all_local_first_recipient_looped(make_tern):
    """The first recipient's file is the source of the others' copies even
    when that recipient is refused by the loop check; it is then removed."""
    t = make_tern(users=USERS)
    prime_mailboxes(t, ["bob@example.test", "carol@example.test"])
    code, msg = send(t, ["bob@example.test", "carol@example.test"],
                     b"Delivered-To: bob@example.test\r\nSubject: loop\r\n\r\nmark-loop-1\r\n")
    assert code == 250, msg
    msgs = t.wait_messages("carol@example.test", 2)
    assert any(b"mark-loop-1" in m for m in msgs)
    notice = [parse(m) for m in t.wait_messages("alice@example.test", 1)][0]
    assert status_groups(notice)[0]["Status"] == "5.4.6"
    assert not any(b"mark-loop-1" in m for m in t.messages("bob@example.test"))
    assert os.listdir(os.path.join(t.maildir("bob@example.test"), "tmp")) == []


def test_all_local_one_mailbox_failing_goes_to_the_queue(make_tern):
    """A recipient whose mailbox cannot be written sends the streamed message
    to the queue (copied from the first mailbox's file), delivered later."""
    t = make_tern(users=USERS, config={"queue": {"retry": "1s"}})
    prime_mailboxes(t, ["bob@example.test"])
    carol = os.path.join(t.state, "mail", "example.test", "carol")
    os.makedirs(carol)
    with open(os.path.join(carol, "Maildir"), "w") as f:
        f.write("in the way\n")
    code, msg = send(t, ["bob@example.test", "carol@example.test"],
                     b"Subject: later\r\n\r\nmark-later-2\r\n")
    assert code == 250, msg
    assert "path=queue" in t.wait_log("event=queued", 2).split("event=queued")[-1].split("\n")[0]
    t.wait_log("status=deferred")
    bob = [m for m in t.wait_messages("bob@example.test", 2) if b"mark-later-2" in m]
    assert len(bob) == 1
    os.remove(os.path.join(carol, "Maildir"))
    (c,) = t.wait_messages("carol@example.test", 1)
    assert c.endswith(b"Subject: later\n\nmark-later-2\n")
    assert c.startswith(b"Return-Path: <alice@example.test>\nDelivered-To: carol@example.test\n")
    # bob got it once
    t.wait_log("event=removed queue=")
    assert len([m for m in t.messages("bob@example.test") if b"mark-later-2" in m]) == 1


def test_all_local_small_message_full_mailbox_fs_goes_to_the_queue(make_tern):
    """A small message is written into its mailbox's file in one go by the
    worker that commits it (the stream buffers it): a mailbox file system
    that refuses it then sends it to the queue, with its 250, and it is
    delivered once there is room again."""
    from test_disk_full import fill, mount_tmpfs, send as send_big, umount
    from mailcheck import delivered
    t = make_tern(start=False, config={"queue": {"retry": "1s"}})
    mail = os.path.join(t.state, "mail")
    mount_tmpfs(mail, "1m")
    try:
        t.start()
        assert send_big(t, ["alice@example.test"], "first", 1) == (250, "2.0.0")
        t.wait_messages("alice@example.test", 1)
        filler = fill(mail)
        assert send_big(t, ["alice@example.test"], "small", 4) == (250, "2.0.0")
        assert "path=queue" in t.wait_log("event=queued", 2).rsplit("event=queued", 1)[1].split("\n")[0]
        t.wait_log("status=deferred")
        os.unlink(filler)
        assert wait_for(lambda: sorted(delivered(t, "alice@example.test")) == ["first", "small"], 30), \
            t.log()[-3000:]
        (m,) = [m for m in t.messages("alice@example.test") if b"Subject: small" in m]
        assert m.startswith(b"Return-Path: <sender@example.test>\nDelivered-To: alice@example.test\n")
        assert os.listdir(os.path.join(t.maildir("alice@example.test"), "tmp")) == []
    finally:
        t.stop()
        umount(mail)


def test_all_local_full_mailbox_fs_goes_to_the_queue(make_tern):
    """The mailbox's file system fills while the message streams into it:
    the message goes on in the queue file (another file system here), gets
    its 250, and is delivered once there is room again."""
    from test_disk_full import fill, mount_tmpfs, send as send_big, umount
    from mailcheck import delivered
    t = make_tern(start=False, config={"queue": {"retry": "1s"}})
    mail = os.path.join(t.state, "mail")
    mount_tmpfs(mail, "1m")
    try:
        t.start()
        assert send_big(t, ["alice@example.test"], "first", 1) == (250, "2.0.0")
        t.wait_messages("alice@example.test", 1)
        filler = fill(mail)
        # room for the start of the message, not for all of it
        os.truncate(filler, os.path.getsize(filler) - 64 * 1024)
        assert send_big(t, ["alice@example.test"], "waits", 256) == (250, "2.0.0")
        assert "path=queue" in t.wait_log("event=queued", 2).rsplit("event=queued", 1)[1].split("\n")[0]
        t.wait_log("status=deferred")
        os.unlink(filler)
        deadline = time.time() + 30
        while sorted(delivered(t, "alice@example.test")) != ["first", "waits"]:
            assert time.time() < deadline, t.log()[-3000:]
            time.sleep(0.05)
        tmp = os.path.join(t.maildir("alice@example.test"), "tmp")
        assert os.listdir(tmp) == []
    finally:
        t.stop()
        umount(mail)


def written_in(t, d):
    """How many files in directory d that tern holds open have data:
    named ones and anonymous ones (O_TMPFILE, "d/#INODE (deleted)").
    Spares made ahead are empty."""
    fds = f"/proc/{t.proc.pid}/fd"
    n = 0
    for fd in os.listdir(fds):
        try:
            target = os.readlink(os.path.join(fds, fd))
            if os.path.dirname(target) == d and os.stat(os.path.join(fds, fd)).st_size > 0:
                n += 1
        except FileNotFoundError:
            pass
    return n


def held_in(t, d):
    """(named, anonymous) files in directory d that tern holds open."""
    fds = f"/proc/{t.proc.pid}/fd"
    named = anonymous = 0
    for fd in os.listdir(fds):
        try:
            target = os.readlink(os.path.join(fds, fd))
        except FileNotFoundError:
            continue
        if os.path.dirname(target) == d:
            if os.path.basename(target).startswith("#") and target.endswith("(deleted)"):
                anonymous += 1
            else:
                named += 1
    return named, anonymous


def test_streamed_files_are_anonymous_and_made_ahead(make_tern):
    """All-local mail streams into an anonymous file of the Maildir's tmp/
    (O_TMPFILE): never a name in tmp/, so nothing is left there by a
    crash, and a few such files are made ahead on a worker once the
    Maildir has mail, so that the event loop does not create them."""
    t = make_tern(users=USERS)
    prime_mailboxes(t, ["bob@example.test"])
    tmp = os.path.join(t.maildir("bob@example.test"), "tmp")
    for i in range(3):
        code, msg = send(t, ["bob@example.test"], f"Subject: s{i}\r\n\r\nspare-{i}\r\n".encode())
        assert code == 250, msg
    assert len(t.wait_messages("bob@example.test", 4)) == 4
    # the spares: empty, unnamed, open
    assert wait_for(lambda: held_in(t, tmp)[1] >= 2, 10), held_in(t, tmp)
    assert held_in(t, tmp)[0] == 0
    assert os.listdir(tmp) == []
    assert written_in(t, tmp) == 0
    t.stop()
    assert os.listdir(tmp) == []


def test_burst_into_one_mailbox_each_message_once(make_tern):
    """Many sessions at once into one busy Maildir take its spares faster
    than a worker makes them: those that find none go through their queue
    file and are copied on the worker.  Every message gets its 250 and
    arrives once, whole; nothing is left in tmp/ or the queue."""
    import threading
    t = make_tern(users=USERS)
    prime_mailboxes(t, ["bob@example.test"])
    for i in range(3):   # a busy Maildir: spares asked for
        assert send(t, ["bob@example.test"], f"Subject: warm{i}\r\n\r\nwarm\r\n".encode())[0] == 250
    codes = []

    def one(i):
        codes.append(send(t, ["bob@example.test"], f"Subject: b{i}\r\n\r\nburst-{i}\r\n".encode())[0])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert codes == [250] * 30, codes
    msgs = t.wait_messages("bob@example.test", 34)
    for i in range(30):
        got = [m for m in msgs if m.endswith(f"burst-{i}\n".encode())]
        assert len(got) == 1, (i, len(got))
    tmp = os.path.join(t.maildir("bob@example.test"), "tmp")
    assert os.listdir(tmp) == [] and written_in(t, tmp) == 0
    assert wait_for(lambda: os.listdir(os.path.join(t.state, "queue", "msg")) == [], 10)


def test_abandoned_all_local_message_leaves_nothing(make_tern):
    """A client that goes away in the middle of DATA leaves no file behind
    in the mailbox it was streaming into, nor a message in the queue."""
    from smtpraw import Raw
    t = make_tern(users=USERS)
    prime_mailboxes(t, ["bob@example.test"])
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<alice@example.test>", 250)
        c.cmd("RCPT TO:<bob@example.test>", 250)
        c.cmd("DATA", 354)
        # more than the stream buffers (16 KiB), so that some is in the file
        c.send(b"Subject: cut\r\n\r\n" + b"partial line\r\n" * 3000)
        tmp = os.path.join(t.maildir("bob@example.test"), "tmp")
        # it is being written there (an anonymous file: open, no name)
        assert wait_for(lambda: written_in(t, tmp) > 0, 10), os.listdir(tmp)
    t.wait_log("event=disconnect", 2)
    # the session's memory (and its files) go just after that line
    assert wait_for(lambda: written_in(t, tmp) == 0 and os.listdir(tmp) == [], 10), os.listdir(tmp)
    assert os.listdir(os.path.join(t.state, "queue", "msg")) == []
    assert len(t.messages("bob@example.test")) == 1

"""Invariant 1 of DESIGN.md against the real binary: a message that got its
250 survives SIGKILL and is delivered after a restart; a partial message
is removed at start-up and never delivered; SIGTERM says 421 4.3.2 to idle
sessions and exits cleanly."""
import os
import signal
import time

from smtpraw import Raw, message, wait_for



def tmp_leftovers(t):
    """Files in queue/tmp that hold data (empty scratch files kept for
    reuse are fine)."""
    d = os.path.join(t.state, "queue", "tmp")
    return [n for n in os.listdir(d) if os.path.getsize(os.path.join(d, n)) > 0]

def tmp_bytes(t, name):
    try:
        with open(os.path.join(t.state, "queue", "tmp", name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def queue_ids(t):
    return sorted(n for n in os.listdir(os.path.join(t.state, "queue", "msg")) if len(n) == 16)


def send_one(t, subject, rcpt="alice@example.test"):
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        return c.send_mail("a@remote.test", [rcpt], message(subject))


def subjects(t, addr):
    return [m.split(b"Subject: ")[1].split(b"\n")[0].decode() for m in t.messages(addr)]


def test_sigkill_right_after_250_then_restart(make_tern):
    t = make_tern()
    c = Raw(t.port())
    c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<a@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(message("crash-now") + ".\r\n")
    c.expect(250, "2.0.0")
    t.proc.send_signal(signal.SIGKILL)    # at once, no QUIT
    t.proc.wait()
    c.close()
    t.kill()
    t.start()
    msgs = t.wait_messages("alice@example.test", 1)
    # out of the queue: every delivery of it is done, no copy comes later
    assert wait_for(lambda: queue_ids(t) == [], 30), queue_ids(t)
    # at least once; a duplicate is allowed, a loss is not
    assert 1 <= len(subjects(t, "alice@example.test")) <= 2
    assert set(subjects(t, "alice@example.test")) == {"crash-now"}
    assert "event=queue_recovered" in t.log()
    del msgs


def test_sigkill_before_delivery_is_delivered_exactly_once(make_tern):
    # Delivery cannot happen while a file stands where alice's directory
    # must go: the message is durable in the queue when tern dies.
    t = make_tern(config={"queue": {"retry": "1s"}})
    blocker = os.path.join(t.state, "mail", "example.test", "alice")
    os.makedirs(os.path.dirname(blocker), exist_ok=True)
    open(blocker, "w").close()
    qid = send_one(t, "held-by-crash")
    assert wait_for(lambda: "status=deferred" in t.log(), 30)
    assert queue_ids(t) == [qid]
    t.kill()
    os.unlink(blocker)
    t.start()
    assert t.wait_messages("alice@example.test", 1, timeout=15)
    # out of the queue: no retry can deliver it again
    assert wait_for(lambda: queue_ids(t) == [], 30)
    assert subjects(t, "alice@example.test") == ["held-by-crash"]
    assert f"queue={qid}" in t.log() and "status=sent" in t.log()


def test_many_messages_then_sigkill_none_lost(make_tern):
    t = make_tern()
    acked = []
    for i in range(20):
        send_one(t, f"m{i}")
        acked.append(f"m{i}")
    t.kill()
    t.start()
    assert wait_for(lambda: set(subjects(t, "alice@example.test")) == set(acked), 30), \
        subjects(t, "alice@example.test")
    assert wait_for(lambda: queue_ids(t) == [], 30)


def test_partial_message_in_tmp_removed_and_never_delivered(make_tern):
    t = make_tern(start=False)
    tmp = os.path.join(t.state, "queue", "tmp")
    os.makedirs(tmp, exist_ok=True)
    partial = os.path.join(tmp, "0000000000000001")
    with open(partial, "w") as f:
        f.write("TERN-QUEUE 1\nid 0000000000000001\narrival 1\nfrom =a@remote.test\n"
                "helo =x\nip =127.0.0.1\nauth -\nbody 0\nret 0\nenvid -\n"
                "rcpt L 0 =alice@example.test =alice@example.test -\n\n"
                "Subject: partial\n\nnever to be seen\n")
    t.start()
    assert wait_for(lambda: not os.path.exists(partial), 30)
    assert "action=remove_partial" in t.log()
    # only committed messages (msg/) are ever delivered, and start-up is
    # over: the partial was not committed, so it can never arrive
    assert queue_ids(t) == []
    assert t.messages("alice@example.test") == []


def test_message_without_end_marker_in_msg_not_delivered(make_tern):
    """A file in msg/ cut short (no TERN-END trailer) is never delivered."""
    t = make_tern(start=False)
    msgdir = os.path.join(t.state, "queue", "msg")
    os.makedirs(msgdir, exist_ok=True)
    with open(os.path.join(msgdir, "0000000000000002"), "w") as f:
        f.write("TERN-QUEUE 1\nid 0000000000000002\narrival 1\nfrom =a@remote.test\n"
                "helo =x\nip =127.0.0.1\nauth -\nbody 0\nret 0\nenvid -\n"
                "rcpt L 0 =alice@example.test =alice@example.test -\n\n"
                "Subject: cut\n\ncut sh")
    t.start()
    # start-up's recovery tried to load it and gave up for good
    t.wait_for_log(r"event=queue_unreadable queue=0000000000000002 error=\"no_trailer\"")
    assert t.messages("alice@example.test") == []


def test_sigkill_during_data_leaves_nothing(make_tern):
    t = make_tern()
    c = Raw(t.port())
    c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<a@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: half\r\n\r\n" + b"x" * 5000 + b"\r\n")
    assert wait_for(lambda: os.listdir(os.path.join(t.state, "queue", "tmp")) != [], 30)
    t.kill()
    c.close()
    t.start()
    assert tmp_leftovers(t) == []
    # nothing committed after start-up's recovery: nothing can arrive
    assert queue_ids(t) == []
    assert t.messages("alice@example.test") == []


def test_client_drops_mid_data_nothing_queued(make_tern):
    t = make_tern()
    c = Raw(t.port())
    c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<a@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: dropped\r\n\r\nhalf a message\r\n")
    c.close()
    assert wait_for(lambda: tmp_leftovers(t) == [], 30)
    assert queue_ids(t) == []
    assert t.messages("alice@example.test") == []


def test_sigterm_idle_session_gets_421(make_tern):
    t = make_tern()
    c = Raw(t.port())
    c.cmd("EHLO client.test", 250)
    d = Raw(t.port())        # not even greeted back yet
    t.proc.send_signal(signal.SIGTERM)
    c.expect(421, "4.3.2")
    assert c.closed()
    d.expect(421, "4.3.2")
    assert d.closed()
    assert t.proc.wait(10) == 0
    c.close()
    d.close()
    assert "event=stop" in t.log()


def test_sigterm_mid_transaction_message_not_queued(make_tern):
    t = make_tern()
    c = Raw(t.port())
    c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<a@remote.test>", 250)
    c.cmd("RCPT TO:<alice@example.test>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: interrupted\r\n\r\nbody\r\n")
    # the signal comes once the server has that part of the message on disk
    assert wait_for(lambda: any(b"Subject: interrupted" in tmp_bytes(t, n) for n in tmp_leftovers(t)), 30)
    t.proc.send_signal(signal.SIGTERM)
    c.expect(421, "4.3.2")
    assert c.closed()
    assert t.proc.wait(10) == 0
    c.close()
    assert queue_ids(t) == []
    assert tmp_leftovers(t) == []

"""Queue ids after the clock stepped back: a queue file left by an earlier
run with an id "from the future" is never replaced by a new message; new
messages are given ids after it (the id counter is seeded from the queue
at start) and both are delivered."""
import json
import os
import time

from conftest import free_port
from smtpraw import Raw, message


def queue_file(qid, rcpt, subject):
    return ("TERN-QUEUE 1\nid %s\narrival %d\nfrom =sender@example.test\nhelo =x\nip =127.0.0.1\n"
            "auth -\nbody 0\nret 0\nenvid -\nrcpt R 0 =%s =%s -\n\n" % (qid, int(time.time()), rcpt, rcpt))


def with_trailer(head, body):
    text = head + body
    return text + "TERN-END off=%d len=%d lines=%d 8bit=0\n" % (len(head), len(body), body.count("\n"))


def test_new_message_after_restart_never_replaces_a_future_id(make_tern):
    closed = free_port()
    t = make_tern(start=False, config={"relay": {"smarthost": f"[127.0.0.1]:{closed}"},
                                       "queue": {"retry": "1h"}})
    msgdir = os.path.join(t.state, "queue", "msg")
    os.makedirs(msgdir, exist_ok=True)
    # an hour ahead of now, in microseconds: written before the clock
    # was set back
    future = "%016X" % ((int(time.time()) + 3600) * 1000000)
    old = with_trailer(queue_file(future, "early@remote.test", "early"),
                       "Subject: early\n\nqueued before the clock went back\n")
    with open(os.path.join(msgdir, future), "w") as f:
        f.write(old)
    t.start()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<sender@example.test>", 250)
        c.cmd("RCPT TO:<late@remote.test>", 250)
        c.cmd("DATA", 354)
        c.send(message("late") + ".\r\n")
        c.expect(250)
    r = t.cli("queue", "list", "--json")
    assert r.returncode == 0, r.stderr
    entries = {e["recipient"]: e["id"] for e in json.loads(r.stdout)}
    assert set(entries) == {"early@remote.test", "late@remote.test"}, entries
    assert entries["early@remote.test"] == future
    assert entries["late@remote.test"] > future
    with open(os.path.join(msgdir, future)) as f:
        assert f.read() == old

"""kill -9 soak: rounds of concurrent mail to local users and to a remote
domain (a fake MX on 127.0.0.2, found through dnsmasq), tern killed with
SIGKILL at a random moment of each round, then started again.  At the end
every message that got a 250 has arrived for every one of its recipients
(in the Maildir, or at the fake MX), whole; duplicates are counted and
allowed, losses are not.

TERN_SOAK_ROUNDS (default 5) and TERN_SOAK_SEED make longer or repeated
runs; the seed of each run is printed.
"""
import collections
import os
import random
import threading
import time

from conftest import Dnsmasq, free_port
from mailcheck import big_message, delivered, mx_subjects
from smtpraw import Raw, wait_for
from test_outbound import Receiver

ROUNDS = int(os.environ.get("TERN_SOAK_ROUNDS", "5"))
CLIENTS = 4
LOCAL = ["alice@example.test", "bob@example.test"]
REMOTE = ["carol@remote.test", "dave@remote.test"]
# recipient sets: all local (direct path), all remote, mixed
SHAPES = [[LOCAL[0]], [LOCAL[0], LOCAL[1]], [REMOTE[0]], [LOCAL[1], REMOTE[1]], [REMOTE[0], REMOTE[1]]]


def client(t, name, rng, stop, acked, lock):
    """Send messages until stop is set; record each one that got a 250."""
    i = 0
    while not stop.is_set():
        i += 1
        subject = f"{name}-{i}"
        rcpts = rng.choice(SHAPES)
        try:
            with Raw(t.port(), timeout=10) as c:
                c.cmd("EHLO client.test", 250)
                c.cmd("MAIL FROM:<sender@example.test>", 250)
                for r in rcpts:
                    c.cmd(f"RCPT TO:<{r}>", 250)
                c.cmd("DATA", 354)
                c.send(big_message(subject, rng.choice([1, 4, 32])) + ".\r\n")
                code, _ = c.expect()
                if code == 250:
                    with lock:
                        acked[subject] = rcpts
        except (OSError, EOFError, AssertionError):
            time.sleep(0.02)     # killed, or not up yet


def arrivals(t, rx):
    """{(subject, recipient): times it arrived}."""
    got = collections.Counter()
    for addr in LOCAL:
        for subj in delivered(t, addr):
            got[(subj, addr)] += 1
    for subj, rcpts in mx_subjects(rx):
        for r in rcpts:
            got[(subj, r)] += 1
    return got


def test_kill9_soak_no_acked_message_lost(make_tern):
    seed = int(os.environ.get("TERN_SOAK_SEED", str(int(time.time()))))
    print(f"soak: seed={seed} rounds={ROUNDS}")
    rng = random.Random(seed)
    port = free_port("127.0.0.2")
    dns = Dnsmasq(["--local=/test/", "--mx-host=remote.test,mx.remote.test,10",
                   "--host-record=mx.remote.test,127.0.0.2"])
    rx = Receiver("127.0.0.2", port)
    try:
        t = make_tern(config={"dns": {"servers": f"127.0.0.1:{dns.port}"},
                              "delivery": {"remote_port": str(port), "client_timeout": "5s"},
                              "queue": {"retry": "1s"}})
        acked, lock = {}, threading.Lock()
        for rnd in range(ROUNDS):
            stop = threading.Event()
            threads = [threading.Thread(target=client, daemon=True,
                                        args=(t, f"r{rnd}c{k}", random.Random(rng.random()), stop, acked, lock))
                       for k in range(CLIENTS)]
            for th in threads:
                th.start()
            time.sleep(rng.uniform(0.3, 1.5))
            t.kill()
            stop.set()
            for th in threads:
                th.join(15)
            t.start()
        want = {(subj, r) for subj, rcpts in acked.items() for r in rcpts}
        assert want, "no message was accepted"
        msgdir = os.path.join(t.state, "queue", "msg")
        assert wait_for(lambda: want <= set(arrivals(t, rx)) and
                        not [n for n in os.listdir(msgdir) if len(n) == 16], 120), \
            sorted(want - set(arrivals(t, rx)))[:20]
        got = arrivals(t, rx)
        lost = want - set(got)
        dups = sum(n - 1 for n in got.values() if n > 1)
        print(f"soak: accepted={len(acked)} deliveries_owed={len(want)} "
              f"delivered={sum(got.values())} duplicates={dups} lost={len(lost)}")
        assert not lost
    finally:
        rx.stop()
        dns.stop()

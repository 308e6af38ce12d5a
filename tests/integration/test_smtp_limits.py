"""Every limit of issue 2 crossed by one, with its precise reply: command
line length, text line length, message size, recipients, errors,
connections (total and per address), the command and DATA timeouts,
mail loops (Received: count), and 50 sessions at once."""
import os
import threading
import time

import pytest

from smtpraw import Raw, message, wait_for



def tmp_leftovers(t):
    """Files in queue/tmp that hold data (empty scratch files kept for
    reuse are fine)."""
    d = os.path.join(t.state, "queue", "tmp")
    return [n for n in os.listdir(d) if os.path.getsize(os.path.join(d, n)) > 0]

def start_data(c, rcpt="alice@example.test"):
    c.cmd("EHLO client.test", 250)
    c.cmd("MAIL FROM:<a@remote.test>", 250)
    c.cmd(f"RCPT TO:<{rcpt}>", 250)
    c.cmd("DATA", 354)


def first_conn(t):
    """The first connection of a connection-limit test: the start-up probe
    of the fixture (connect, close) may still be counted for a moment.
    Once this connection has its greeting, every earlier one was accepted
    (and logged); wait until all of those have ended too."""
    def try_one():
        c = Raw(t.port())
        if c.greeting[0] == 220:
            return c
        c.close()
        return None
    c = wait_for(try_one, 30)
    assert c is not None
    t.wait_log("event=disconnect", n=t.log().count("event=connect") - 1)
    return c


def nothing_delivered(t, addr="alice@example.test"):
    """Nothing of a refused message arrives or stays: once its session has
    ended and the queue has drained (what was accepted is delivered), the
    mailbox and tmp/ hold none of it."""
    t.wait_sessions_closed()
    t.wait_queue_empty()
    assert t.messages(addr) == []
    assert tmp_leftovers(t) == []


# ---- command line: 512 octets including CRLF (RFC 5321 4.5.3.1.4) ----------

def test_command_line_512_ok_513_refused(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        line = "NOOP " + "x" * (512 - 2 - 5)
        assert len(line) + 2 == 512
        c.cmd(line, 250, "2.0.0")
        c.cmd(line + "y", 500, "5.5.2")
        # the session goes on, and in a defined state
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)


def test_command_line_very_long_in_pieces(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        for _ in range(10):
            c.send(b"NOOP " + b"x" * 10000)
            time.sleep(0.01)
        c.send(b"\r\n")
        c.expect(500, "5.5.2")
        c.cmd("NOOP", 250)
        assert c.buf == b""


def test_mail_path_limits(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<" + "a" * 64 + "@remote.test>", 250)
        c.cmd("RSET", 250)
        c.cmd("MAIL FROM:<" + "a" * 65 + "@remote.test>", 553, "5.1.3")


# ---- text line: 1000 octets including CRLF (RFC 5321 4.5.3.1.6) -------------

def test_text_line_1000_ok(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        start_data(c)
        c.send(b"Subject: long\r\n\r\n" + b"y" * 998 + b"\r\n.\r\n")
        c.expect(250, "2.0.0")
    assert b"y" * 998 + b"\n" in t.wait_messages("alice@example.test", 1)[0]


def test_text_line_1001_refused(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        start_data(c)
        c.send(b"Subject: long\r\n\r\n" + b"y" * 999 + b"\r\nmore\r\n.\r\n")
        c.expect(500, "5.5.2")
        # the session goes on
        c.cmd("MAIL FROM:<a@remote.test>", 250)
    nothing_delivered(t)


# ---- message size ---------------------------------------------------------------

def test_message_size_limit(make_tern):
    t = make_tern(config={"smtp": {"max_message_size": "4K"}})
    with Raw(t.port()) as c:
        start_data(c)
        c.send(b"Subject: small\r\n\r\n" + (b"z" * 70 + b"\r\n") * 40 + b".\r\n")
        c.expect(250, "2.0.0")
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<bob@example.test>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: big\r\n\r\n" + (b"z" * 70 + b"\r\n") * 60 + b".\r\n")
        c.expect(552, "5.3.4")
        c.cmd("NOOP", 250)
    t.wait_messages("alice@example.test", 1)
    nothing_delivered(t, "bob@example.test")


def test_message_size_much_larger_is_read_to_the_end(make_tern):
    t = make_tern(config={"smtp": {"max_message_size": "4K"}})
    with Raw(t.port()) as c:
        start_data(c)
        chunk = (b"z" * 998 + b"\r\n") * 100
        for _ in range(20):       # 2 MB
            c.send(chunk)
        c.send(b".\r\n")
        c.expect(552, "5.3.4")
        c.cmd("NOOP", 250)
        assert c.buf == b""
    nothing_delivered(t)


# ---- recipients (RFC 5321 4.5.3.1.8: at least 100) ---------------------------

def test_100_recipients_then_452(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        for i in range(100):
            c.cmd(f"RCPT TO:<{'alice' if i % 2 else 'bob'}@example.test>", 250, "2.1.5")
        c.cmd("RCPT TO:<alice@example.test>", 452, "4.5.3")
        c.cmd("RCPT TO:<bob@example.test>", 452, "4.5.3")
        # 452 is not the client's fault: no error-limit 421 here, and the
        # transaction goes on with the accepted ones
        c.cmd("DATA", 354)
        c.send(message() + ".\r\n")
        c.expect(250, "2.0.0")
    t.wait_messages("alice@example.test", 1)
    t.wait_messages("bob@example.test", 1)


def test_max_recipients_configured(make_tern):
    t = make_tern(config={"smtp": {"max_recipients": "2"}})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("RCPT TO:<bob@example.test>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 452, "4.5.3")
        c.cmd("RSET", 250)
        # the count is per transaction
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<alice@example.test>", 250)
        c.cmd("RCPT TO:<bob@example.test>", 250)


# ---- errors --------------------------------------------------------------------------

def test_error_limit_default_then_421(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        for _ in range(9):
            c.cmd("BOGUS", 500, "5.5.1")
        c.cmd("NOOP", 250)
        c.cmd("BOGUS", 500, "5.5.1")      # the 10th error
        c.expect(421, "4.7.0")
        assert c.closed()


def test_error_limit_configured_counts_all_5xx(make_tern):
    t = make_tern(config={"smtp": {"max_errors": "3"}})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<a@remote.test>", 250)
        c.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1")
        c.cmd("RCPT TO:<nobody2@example.test>", 550, "5.1.1")
        c.cmd("MAIL FROM:<a@remote.test>", 503, "5.5.1")
        c.expect(421, "4.7.0")
        assert c.closed()


def test_error_limit_pipelined_stops_processing(make_tern):
    t = make_tern(config={"smtp": {"max_errors": "2"}})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.send(b"X1\r\nX2\r\nNOOP\r\nNOOP\r\n")
        c.expect(500)
        c.expect(500)
        c.expect(421, "4.7.0")
        assert c.closed()
        assert c.buf == b""


# ---- connections ------------------------------------------------------------------------

def test_max_connections_total(make_tern):
    t = make_tern(config={"smtp": {"max_connections": "2"}})
    a, b = first_conn(t), Raw(t.port())
    assert a.greeting[0] == 220 and b.greeting[0] == 220
    c = Raw(t.port())
    assert c.greeting[0] == 421 and c.greeting[1][-1].startswith("421 4.7.0")
    assert c.closed()
    c.close()
    a.cmd("QUIT", 221)
    a.close()

    def third_ok():
        d = Raw(t.port())
        ok = d.greeting[0] == 220
        d.close()
        return ok
    assert wait_for(third_ok, 30)
    b.cmd("NOOP", 250)
    b.close()


def test_max_connections_per_ip(make_tern):
    t = make_tern(config={"smtp": {"max_connections_per_ip": "3"}})
    held = [first_conn(t)] + [Raw(t.port()) for _ in range(2)]
    assert all(h.greeting[0] == 220 for h in held)
    extra = Raw(t.port())
    assert extra.greeting[0] == 421 and extra.greeting[1][-1].startswith("421 4.7.0")
    assert extra.closed()
    extra.close()
    for h in held:
        h.close()

    def again():
        d = Raw(t.port())
        ok = d.greeting[0] == 220
        d.close()
        return ok
    assert wait_for(again, 30)


def test_per_ip_limit_is_per_address(make_tern):
    t = make_tern(config={"smtp": {"max_connections_per_ip": "1"}})
    port = t.port()
    a = first_conn(t)
    assert a.greeting[0] == 220
    # A connection from 127.0.0.2 to 127.0.0.1 is another client address.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    assert s.recv(100).startswith(b"220 ")
    s.close()
    b = Raw(port)
    assert b.greeting[0] == 421
    a.close()
    b.close()


# ---- timeouts -----------------------------------------------------------------------------

def test_command_timeout(make_tern):
    t = make_tern(config={"smtp": {"command_timeout": "2s"}})
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("NOOP", 250)          # activity restarts the clock
        t0 = time.time()
        code, lines = c.reply(timeout=10)
        assert (code, lines[-1][:9]) == (421, "421 4.4.2")
        assert 1.5 <= time.time() - t0 < 6
        assert c.closed()


def test_command_timeout_before_helo(make_tern):
    t = make_tern(config={"smtp": {"command_timeout": "2s"}})
    with Raw(t.port()) as c:
        c.expect(421, "4.4.2")
        assert c.closed()


def test_data_timeout(make_tern):
    t = make_tern(config={"smtp": {"command_timeout": "30s", "data_timeout": "2s"}})
    with Raw(t.port()) as c:
        start_data(c)
        c.send(b"Subject: stalled\r\n\r\npart of a message\r\n")
        t0 = time.time()
        code, lines = c.reply(timeout=10)
        assert (code, lines[-1][:9]) == (421, "421 4.4.2")
        assert 1.5 <= time.time() - t0 < 6
        assert c.closed()
    nothing_delivered(t)


def test_data_timeout_is_per_block(make_tern):
    t = make_tern(config={"smtp": {"data_timeout": "2s"}})
    with Raw(t.port()) as c:
        start_data(c)
        c.send(b"Subject: slow\r\n\r\n")
        for i in range(4):       # 4 s in all, never 2 s without a block
            time.sleep(1)
            c.send(b"line %d\r\n" % i)
        c.send(b".\r\n")
        c.expect(250, "2.0.0")
    assert b"line 3\n" in t.wait_messages("alice@example.test", 1)[0]


# ---- mail loops --------------------------------------------------------------------------

def received(n):
    return "".join(f"Received: from h{i}.test by h{i + 1}.test; Mon, 25 Oct 2004 14:24:27 +0800\r\n"
                   for i in range(n))


@pytest.mark.parametrize("n", [99, 100])
def test_up_to_100_received_accepted(make_tern, n):
    t = make_tern()
    with Raw(t.port()) as c:
        start_data(c)
        c.send(received(n) + message() + ".\r\n")
        c.expect(250, "2.0.0")
    assert t.wait_messages("alice@example.test", 1)[0].count(b"Received: ") == n + 1


@pytest.mark.parametrize("n", [101, 150])
def test_too_many_received_554(make_tern, n):
    t = make_tern()
    with Raw(t.port()) as c:
        start_data(c)
        c.send(received(n) + message() + ".\r\n")
        c.expect(554, "5.4.6")
        c.cmd("NOOP", 250)
    nothing_delivered(t)


def test_received_in_body_does_not_count(make_tern):
    t = make_tern()
    with Raw(t.port()) as c:
        start_data(c)
        c.send(message(body=received(150)) + ".\r\n")
        c.expect(250, "2.0.0")


# ---- 50 sessions at once -----------------------------------------------------------------

def test_50_parallel_sessions(make_tern):
    t = make_tern()
    errors = []
    ids = []
    lock = threading.Lock()

    def one(i):
        try:
            with Raw(t.port(), timeout=30) as c:
                c.cmd(f"EHLO c{i}.test", 250)
                qid = c.send_mail(f"s{i}@remote.test", ["alice@example.test"],
                                  message(f"parallel-{i}", body=f"number {i}\r\n" * 50))
                c.cmd("QUIT", 221)
            with lock:
                ids.append(qid)
        except Exception as e:   # noqa: BLE001 - reported below
            with lock:
                errors.append(f"{i}: {e!r}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    assert len(set(ids)) == 50
    msgs = t.wait_messages("alice@example.test", 50, timeout=30)
    subjects = sorted(int(m.split(b"Subject: parallel-")[1].split(b"\n")[0]) for m in msgs)
    assert subjects == list(range(50))
    assert wait_for(lambda: os.listdir(os.path.join(t.state, "queue", "msg")) == [], 30)

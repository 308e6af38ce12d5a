"""The SMTP client towards hosts that offer CHUNKING (RFC 3030 BDAT),
BINARYMIME and SMTPUTF8 (RFC 6531), against a small asyncio fake MX that
speaks BDAT (aiosmtpd does not)."""
import asyncio
import threading

import pytest

from conftest import free_port
from smtpraw import Raw
from test_outbound import dsns, net, status_fields, wait_for   # noqa: F401 (net is a fixture)


class ChunkMX:
    """A fake MX on (ip, port): EHLO offers ext; MAIL/RCPT/DATA/BDAT/RSET/
    QUIT.  Records each command line, each BDAT (size, last) and each
    message's octets exactly as they came.  bdat_reply(n) may refuse the
    n-th chunk of a transaction (0-based)."""

    def __init__(self, ip, port, ext=("PIPELINING", "8BITMIME", "CHUNKING", "SIZE 100000000"),
                 bdat_reply=None, rcpt=None):
        self.ip, self.port, self.ext = ip, port, list(ext)
        self.bdat_reply = bdat_reply or (lambda n: "250 2.0.0 chunk ok")
        self.rcpt = rcpt or {}
        self.commands, self.bdats, self.messages = [], [], []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self.session, self.ip, self.port))
        ready.set()
        self.loop.run_forever()

    def stop(self):
        async def shutdown():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)

    async def session(self, reader, writer):
        def send(line):
            writer.write(line.encode() + b"\r\n")

        env, body, nchunk, failed = None, b"", 0, False
        send("220 chunkmx ESMTP")
        try:
            while True:
                raw = await reader.readuntil(b"\r\n")
                line = raw[:-2].decode("utf-8", "replace")
                self.commands.append(line)
                verb = line.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    for e in ["chunkmx"] + self.ext:
                        send(f"250-{e}")
                    send("250 HELP")
                elif verb == "MAIL":
                    env, body, nchunk, failed = {"from": line, "rcpts": []}, b"", 0, False
                    send("250 2.1.0 ok")
                elif verb == "RCPT":
                    addr = line.split("<", 1)[1].rsplit(">", 1)[0]
                    r = self.rcpt.get(addr, "250 2.1.5 ok")
                    if r.startswith("2") and env is not None:
                        env["rcpts"].append(addr)
                    send(r)
                elif verb == "BDAT":
                    parts = line.split()
                    n, last = int(parts[1]), len(parts) > 2 and parts[2].upper() == "LAST"
                    data = await reader.readexactly(n)
                    self.bdats.append((n, last))
                    if env is None or not env["rcpts"]:
                        send("503 5.5.1 no transaction")
                        continue
                    if failed:
                        send("503 5.5.1 transaction failed earlier")
                        continue
                    reply = self.bdat_reply(nchunk)
                    nchunk += 1
                    if not reply.startswith("2"):
                        failed = True
                        send(reply)
                        continue
                    body += data
                    if last:
                        env["data"] = body
                        self.messages.append(env)
                        env = None
                        send("250 2.0.0 message ok")
                    else:
                        send(reply)
                elif verb == "DATA":
                    send("354 go on")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    env["data"] = data[:-3]
                    env["via_data"] = True
                    self.messages.append(env)
                    env = None
                    send("250 2.0.0 ok")
                elif verb == "RSET":
                    env = None
                    send("250 2.0.0 ok")
                elif verb == "QUIT":
                    send("221 bye")
                    await writer.drain()
                    break
                else:
                    send("502 5.5.2 no")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
def mx(net):
    made = []

    def factory(ip, domain, **kw):
        net.dns(f"--mx-host={domain},mx.{domain},10", f"--host-record=mx.{domain},{ip}")
        m = ChunkMX(ip, net.port, **kw)
        made.append(m)
        return m
    yield factory
    for m in made:
        m.stop()


def relay(t, rcpts, body, sender="alice@example.test", mail_opts=""):
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd(f"MAIL FROM:<{sender}>{mail_opts}", 250)
        for r in rcpts:
            c.cmd(f"RCPT TO:<{r}>", 250)
        c.cmd("DATA", 354)
        c.send(body + b".\r\n")
        c.expect(250, "2.0.0")


BODY = (b"From: alice@example.test\r\nSubject: chunks\r\n\r\n"
        b"first line\r\n..starts with a dot (stuffed for DATA)\r\n")


def test_bdat_towards_chunking_host(net, mx):
    """No DATA: one BDAT LAST with the message in canonical CRLF form and
    without dot-stuffing; the MAIL..RCPT group is pipelined, then BDAT."""
    m = mx("127.0.0.151", "chunk.test")
    t = net.tern()
    relay(t, ["bob@chunk.test"], BODY)
    wait_for(lambda: len(m.messages) == 1, t=t)
    data = m.messages[0]["data"]
    assert "via_data" not in m.messages[0]
    assert not any(c.upper() == "DATA" for c in m.commands)
    assert data.endswith(b"first line\r\n.starts with a dot (stuffed for DATA)\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    # a small message is one chunk, LAST (no extra "BDAT 0 LAST")
    assert m.bdats == [(len(data), True)]
    wait_for(lambda: "status=sent" in t.log(), t=t)


def test_bdat_large_message_in_many_chunks(net, mx):
    m = mx("127.0.0.152", "chunk2.test")
    t = net.tern()
    lines = b"".join(b"%06d %s\r\n" % (i, b"x" * 90) for i in range(4000))   # ~390 KB
    body = b"Subject: big\r\n\r\n" + lines
    relay(t, ["bob@chunk2.test"], body)
    wait_for(lambda: len(m.messages) == 1, timeout=40, t=t)
    assert len(m.bdats) > 2
    assert [last for _, last in m.bdats] == [False] * (len(m.bdats) - 1) + [True]
    assert m.bdats[-1][0] > 0
    assert m.messages[0]["data"].endswith(lines)
    assert sum(n for n, _ in m.bdats) == len(m.messages[0]["data"])


def test_bdat_refused_chunk_bounces(net, mx):
    """A refused chunk decides the recipients; the client stops sending,
    reads the replies it is owed, RSETs, and the sender gets the DSN."""
    m = mx("127.0.0.153", "chunk3.test", bdat_reply=lambda n: "552 5.3.4 too much" if n == 1 else "250 2.0.0 ok")
    t = net.tern()
    lines = b"".join(b"%06d %s\r\n" % (i, b"y" * 90) for i in range(2000))
    relay(t, ["bob@chunk3.test"], b"Subject: refused\r\n\r\n" + lines)
    (d,) = dsns(t)
    f = status_fields(d)[0]
    assert f["Status"] == "5.3.4" and f["Action"] == "failed"
    assert m.messages == []
    # every chunk's reply was read (the session stayed in step): RSET
    # follows the last BDAT, and no client error was logged
    wait_for(lambda: "RSET" in m.commands, t=t)
    last_bdat = max(i for i, c in enumerate(m.commands) if c.startswith("BDAT"))
    assert m.commands.index("RSET") > last_bdat
    assert "event=client_error" not in t.log()


def test_data_towards_host_without_chunking(net, mx):
    m = mx("127.0.0.154", "nochunk.test", ext=("PIPELINING", "8BITMIME"))
    t = net.tern()
    relay(t, ["bob@nochunk.test"], BODY)
    wait_for(lambda: len(m.messages) == 1, t=t)
    assert m.messages[0].get("via_data") and m.bdats == []
    assert b"\r\n..starts with a dot" in m.messages[0]["data"]


# ---- SMTPUTF8 when relaying ------------------------------------------------------

UTF8_BODY = "From: alice@example.test\r\nSubject: caf\u00e9\r\n\r\nbonjour\r\n".encode()


def test_smtputf8_relayed_with_the_parameter(net, mx):
    m = mx("127.0.0.155", "utf.test", ext=("PIPELINING", "8BITMIME", "SMTPUTF8"))
    t = net.tern()
    relay(t, ["j\u00f6rg@utf.test".encode().decode("latin-1")], UTF8_BODY, mail_opts=" SMTPUTF8")
    wait_for(lambda: len(m.messages) == 1, t=t)
    assert m.messages[0]["from"].endswith(" SMTPUTF8")
    assert m.messages[0]["rcpts"] == ["j\u00f6rg@utf.test"]
    assert "Subject: caf\u00e9".encode() in m.messages[0]["data"]


def test_smtputf8_to_host_without_it_bounces_5_6_7(net, mx):
    """Never downgraded: the recipient bounces with 5.6.7 and nothing is sent."""
    m = mx("127.0.0.156", "noutf.test", ext=("PIPELINING", "8BITMIME"))
    t = net.tern()
    relay(t, ["j\u00f6rg@noutf.test".encode().decode("latin-1")], UTF8_BODY, mail_opts=" SMTPUTF8")
    (d,) = dsns(t)
    f = status_fields(d)[0]
    assert f["Status"] == "5.6.7" and f["Action"] == "failed"
    assert m.messages == [] and not any(c.startswith("MAIL") for c in m.commands)


def test_smtputf8_flag_without_need_goes_without_it(net, mx):
    """SMTPUTF8 given for an all-ASCII message: the host without SMTPUTF8
    gets it as a plain message."""
    m = mx("127.0.0.157", "noutf2.test", ext=("PIPELINING", "8BITMIME"))
    t = net.tern()
    relay(t, ["bob@noutf2.test"], BODY, mail_opts=" SMTPUTF8")
    wait_for(lambda: len(m.messages) == 1, t=t)
    assert "SMTPUTF8" not in m.messages[0]["from"]


# ---- BINARYMIME (RFC 3030 §3) ---------------------------------------------------

BINARY = bytes(range(256)) * 2 + b"\r\n.\r\n\n\r"
BIN_HEAD = b"From: alice@example.test\r\nSubject: bin\r\nContent-Type: application/octet-stream\r\n\r\n"


def relay_binary(t, rcpt):
    body = BIN_HEAD + BINARY
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<alice@example.test> BODY=BINARYMIME", 250)
        c.cmd(f"RCPT TO:<{rcpt}>", 250)
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        c.expect(250, "2.0.0")


def test_binarymime_relayed_byte_exact(net, mx):
    """The header section (tern's Received: in it) goes in CRLF form, the
    body exactly as it came in, with BODY=BINARYMIME."""
    m = mx("127.0.0.158", "bin.test", ext=("PIPELINING", "8BITMIME", "CHUNKING", "BINARYMIME"))
    t = net.tern()
    relay_binary(t, "bob@bin.test")
    wait_for(lambda: len(m.messages) == 1, t=t)
    data = m.messages[0]["data"]
    assert "BODY=BINARYMIME" in m.messages[0]["from"]
    head, sep, body = data.partition(b"\r\n\r\n")
    assert body == BINARY
    assert b"\n" not in head.replace(b"\r\n", b"") and head.startswith(b"Received: ")
    assert head.endswith(BIN_HEAD[:-4])


def test_binarymime_to_host_without_it_bounces_5_6_3(net, mx):
    m = mx("127.0.0.159", "nobin.test", ext=("PIPELINING", "8BITMIME", "CHUNKING"))
    t = net.tern()
    relay_binary(t, "bob@nobin.test")
    (d,) = dsns(t)
    f = status_fields(d)[0]
    assert f["Status"] == "5.6.3" and f["Action"] == "failed"
    assert m.messages == [] and not any(c.startswith("MAIL") for c in m.commands)


# ---- tern to tern ------------------------------------------------------------

def test_tern_to_tern_bdat_and_binarymime(make_tern):
    """tern relaying to another tern (as smarthost) uses BDAT for a text
    message and BINARYMIME for a binary one; both arrive byte for byte."""
    b = make_tern(hostname="mx2.test", domains="far.test",
                  users={"carol@far.test": "c"}, config={"server": {"log_debug": "yes"}})
    a = make_tern(config={"relay": {"smarthost": f"[127.0.0.1]:{b.port()}"},
                          "delivery": {"client_timeout": "5s"}})
    text = b"Subject: t2t\r\n\r\n..\r\n...two\r\nend\r\n"     # dot-stuffed for DATA
    relay(a, ["carol@far.test"], text)
    relay_binary(a, "carol@far.test")
    msgs = b.wait_messages("carol@far.test", 2)
    by_subject = {m.split(b"Subject: ", 1)[1].split(b"\n", 1)[0]: m for m in msgs}
    assert by_subject[b"t2t"].endswith(b"\n\n.\n..two\nend\n")
    binmsg = by_subject[b"bin"]
    assert binmsg.endswith(b"Content-Type: application/octet-stream\n\n" + BINARY)
    assert b.log().count(" to=chunks") == 2
    assert a.log().count("status=sent") == 2

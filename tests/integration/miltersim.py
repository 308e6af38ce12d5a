"""A scripted milter (protocol v6, filter side) for the tests: a small
asyncio server on a loopback port, run in a thread of the test process.

It records every command of every connection, with the macros sent before
it, and answers as scripted:

    sim = MilterSim(actions=ADDHDRS, protocol=0)
    sim.script = {"E": [add_header("X-A", "1"), CONTINUE]}   # replies per command
    sim.fail = ("B", "close")         # or "stall", "garbage" at that command
    sim.script = {"E": [PROGRESS, 0.5, CONTINUE]}     # a number: sleep that long
    sim.pause_at = "B"; ...; sim.resume.set()   # stop reading at the first "B"
    ... sim.sessions[-1].commands  -> ["O", "C", "H", "M", "R", "T", "L", ..., "E"]

A command that wants a reply and has none scripted gets CONTINUE.
"""
import asyncio
import socket
import struct
import threading
import time

ADDHDRS, CHGBODY, ADDRCPT, DELRCPT, CHGHDRS, QUARANTINE = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
CHGFROM, ADDRCPT_PAR = 0x40, 0x80
ALL_ACTIONS = 0xff
NOCONNECT, NOHELO, NOMAIL, NORCPT, NOBODY, NOHDRS, NOEOH, NR_HDR = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80
NODATA, SKIP = 0x200, 0x400
NR_CONN, NR_HELO, NR_MAIL, NR_RCPT, NR_DATA, NR_EOH, NR_BODY = (
    0x1000, 0x2000, 0x4000, 0x8000, 0x10000, 0x40000, 0x80000)
HDR_LEADSPC = 0x100000

# the NR_ bit of each command that may go without a reply
NR_BIT = {"C": NR_CONN, "H": NR_HELO, "M": NR_MAIL, "R": NR_RCPT, "T": NR_DATA, "L": NR_HDR,
          "N": NR_EOH, "B": NR_BODY}
NO_REPLY = {"D", "A", "Q", "K"}


def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd.encode() + data


CONTINUE, ACCEPT, REJECT, TEMPFAIL, DISCARD, SKIP_R, PROGRESS = (
    pkt("c"), pkt("a"), pkt("r"), pkt("t"), pkt("d"), pkt("s"), pkt("p"))


def replycode(text):
    return pkt("y", text.encode() + b"\0")


def add_header(name, value):
    return pkt("h", name.encode() + b"\0" + value.encode() + b"\0")


def ins_header(index, name, value):
    return pkt("i", struct.pack(">I", index) + name.encode() + b"\0" + value.encode() + b"\0")


def chg_header(index, name, value):
    return pkt("m", struct.pack(">I", index) + name.encode() + b"\0" + value.encode() + b"\0")


def del_rcpt(addr):
    return pkt("-", addr.encode() + b"\0")


def repl_body(data):
    return pkt("b", data)


def add_rcpt(addr):
    return pkt("+", addr.encode() + b"\0")


def add_rcpt_par(addr, args):
    return pkt("2", addr.encode() + b"\0" + args.encode() + b"\0")


def chg_from(addr, args=None):
    return pkt("e", addr.encode() + b"\0" + (args.encode() + b"\0" if args is not None else b""))


def quarantine(reason):
    return pkt("q", reason.encode() + b"\0")


def strings(data):
    return [s.decode("latin-1") for s in data.split(b"\0")[:-1]]


class Session:
    def __init__(self):
        self.packets = []       # (cmd, data), macros included
        self.macros = {}        # command -> {name: value}
        self.closed = False

    @property
    def commands(self):
        return [c for c, _ in self.packets if c != "D"]

    def data(self, cmd):
        return [d for c, d in self.packets if c == cmd]

    def headers(self):
        return [tuple(strings(d)) for d in self.data("L")]

    def body(self):
        return b"".join(self.data("B"))


class MilterSim:
    def __init__(self, actions=ADDHDRS | QUARANTINE, protocol=0, unix_path=None):
        self.unix_path = unix_path
        self.actions = actions
        self.protocol = protocol
        self.script = {}
        self.fail = None
        self.sessions = []
        self.pause_at = None
        self.reject_rcpt = None     # RCPT of this address: REJECT
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.port = None
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    @property
    def spec(self):
        return f"unix:{self.unix_path}" if self.unix_path else f"inet:127.0.0.1:{self.port}"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        if self.unix_path:
            self.server = self.loop.run_until_complete(asyncio.start_unix_server(self._serve, path=self.unix_path))
        else:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, sock=sock))
        self.ready.set()
        self.loop.run_forever()

    def stop(self):
        def done():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(done)
        self.thread.join(10)

    @property
    def msg_sessions(self):
        """The sessions that were shown a transaction (tern connects
        at every SMTP connection, the test harness's probes too)."""
        return [s for s in self.sessions if set(s.commands) & set("MRTLNBEA")]

    def wait_sessions(self, n, closed=True, timeout=20.0):
        """The first n sessions that were shown a transaction, once they
        are closed (the SMTP session ended)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.msg_sessions
            if len(got) >= n and (not closed or all(s.closed for s in got[:n])):
                return got
            time.sleep(0.02)
        raise AssertionError(f"milter: {len(self.msg_sessions)} sessions, wanted {n}")

    async def _serve(self, reader, writer):
        s = Session()
        self.sessions.append(s)
        protocol = 0
        pending = {}
        try:
            while True:
                head = await reader.readexactly(4)
                (n,) = struct.unpack(">I", head)
                body = await reader.readexactly(n)
                cmd, data = chr(body[0]), body[1:]
                s.packets.append((cmd, data))
                if self.pause_at == cmd and not self.paused.is_set():
                    self.paused.set()
                    await self.loop.run_in_executor(None, self.resume.wait, 60)
                if cmd == "D":
                    kv = strings(data[1:])
                    s.macros[chr(data[0])] = dict(zip(kv[0::2], kv[1::2]))
                    continue
                if cmd == "Q":
                    break
                if cmd in NO_REPLY or (protocol & NR_BIT.get(cmd, 0)):
                    continue
                if self.fail and self.fail[0] == cmd:
                    how = self.fail[1]
                    if how == "close":
                        break
                    if how == "stall":
                        await reader.read()      # until tern gives up
                        break
                    if how == "garbage":
                        writer.write(b"\0\0\0\x05Zjunk")
                        await writer.drain()
                        continue
                if cmd == "O":
                    protocol = self.protocol
                    writer.write(pkt("O", struct.pack(">III", 6, self.actions, self.protocol)))
                    await writer.drain()
                    continue
                replies = self.script.get(cmd)
                if cmd == "R" and self.reject_rcpt and strings(data)[0] == self.reject_rcpt:
                    replies = [REJECT]
                if replies is None:
                    replies = [CONTINUE]
                # the same command again (a second RCPT) gets the same
                k = pending.get(cmd, 0)
                pending[cmd] = k + 1
                for r in replies:
                    if isinstance(r, (int, float)):
                        await writer.drain()
                        await asyncio.sleep(r)
                        continue
                    writer.write(r)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            s.closed = True
            writer.close()

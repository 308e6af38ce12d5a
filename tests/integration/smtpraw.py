"""A raw, byte-exact SMTP client for the integration tests.

Unlike smtplib it sends exactly the bytes it is given, keeps the input
buffered across replies (so pipelined replies are split correctly) and
returns every reply as (code, lines).
"""
import socket
import time


class Raw:
    def __init__(self, port, host="127.0.0.1", timeout=10.0, greet=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _line(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; pending {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self, timeout=None):
        """One complete reply: (code, [text of each line after 'ddd-'/'ddd '])."""
        lines = []
        while True:
            line = self._line(timeout)
            assert len(line) >= 3 and line[:3].isdigit(), f"bad reply line {line!r}"
            assert line[3:4] in ("-", " ", ""), f"bad reply line {line!r}"
            if lines:
                assert line[:3] == lines[0][:3], f"code changed inside a reply: {lines} {line!r}"
            lines.append(line)
            if line[3:4] != "-":
                return int(line[:3]), lines

    def cmd(self, line, code=None, enh=None):
        """Send one command line (CRLF added) and read its reply.  With code
        (and enh, the enhanced status), assert the reply's code."""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.expect(code, enh, what=line)

    def expect(self, code=None, enh=None, what=""):
        c, lines = self.reply()
        if code is not None:
            assert c == code, f"{what!r}: expected {code}, got {lines}"
        if enh is not None:
            assert lines[-1][4:].startswith(enh + " ") or lines[-1][4:] == enh, \
                f"{what!r}: expected {code} {enh}, got {lines}"
        return c, lines

    def closed(self, timeout=5.0):
        """True when the server has closed the connection (EOF) and sent
        nothing more than what is buffered."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def handshake(self, helo="client.test", ehlo=True):
        return self.cmd(f"{'EHLO' if ehlo else 'HELO'} {helo}", 250)

    def send_mail(self, sender, rcpts, body, ehlo=True):
        """A whole transaction after EHLO; returns the queue id."""
        self.cmd(f"MAIL FROM:<{sender}>", 250, "2.1.0")
        for r in rcpts:
            self.cmd(f"RCPT TO:<{r}>", 250, "2.1.5")
        self.cmd("DATA", 354)
        if isinstance(body, str):
            body = body.encode("latin-1")
        self.send(body + b".\r\n")
        c, lines = self.expect(250, "2.0.0", what="end of data")
        return lines[-1].split()[-1]


def wait_for(pred, timeout=30.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def message(subject="test", body="Hello.\r\n", extra=""):
    return (f"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n{extra}"
            f"Date: Mon, 25 Oct 2004 14:24:27 +0800\r\n\r\n{body}")

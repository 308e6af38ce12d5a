#!/usr/bin/python3
"""A stand-in for build/tern that lets the benchmark suite test its own tern
side before tern exists:  TERN_BIN=bench/selftest_tern.py sh bench/run.sh

It speaks just enough SMTP and POP3 for bench/ to drive it: `serve -c FILE`
with the bench config (smtp/pop3 listen, state_dir, domains local, relay
smarthost). Local mail goes tmp/ -> fsync -> new/ in
STATE/mail/DOMAIN/USER/Maildir; other mail is relayed to the smarthost by
one worker thread. SELFTEST_NO_POP3=1 / SELFTEST_NO_RELAY=1 /
SELFTEST_NO_DELIVERY=1 leave that part out, to check how bench/ reports an
unfinished tern. It is NOT a reference and its figures mean nothing
(Python, a thread per connection, no queue, no durability of relay mail).
"""

import configparser
import os
import queue
import smtplib
import socketserver
import sys
import threading
import time


def addr(text):
    host, _, port = text.strip().rpartition(":")
    return host.strip("[]"), int(port)


class Conf:
    def __init__(self, path):
        cp = configparser.ConfigParser(inline_comment_prefixes=(";",),
                                       strict=False)
        cp.read(path)
        self.state = cp.get("server", "state_dir")
        self.smtp = addr(cp.get("smtp", "listen"))
        self.pop3 = addr(cp.get("pop3", "listen")) if cp.has_option("pop3", "listen") else None
        self.local = cp.get("domains", "local", fallback="").split()
        sh = cp.get("relay", "smarthost", fallback="").strip()
        self.smarthost = addr(sh) if sh else None
        self.users = {}
        with open(cp.get("users", "file")) as f:
            for line in f:
                if ":" in line:
                    u, _, pw = line.strip().partition(":")
                    self.users[u] = pw.replace("{PLAIN}", "", 1)

    def maildir(self, rcpt):
        local, _, domain = rcpt.partition("@")
        return os.path.join(self.state, "mail", domain, local, "Maildir")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256


def deliver(conf, rcpt, data, seq=[0], lock=threading.Lock()):
    md = conf.maildir(rcpt)
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    with lock:
        seq[0] += 1
        name = f"{int(time.time())}.M{seq[0]}P{os.getpid()}.selftest"
    tmp = os.path.join(md, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data.replace(b"\r\n", b"\n"))
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(md, "new", name))


def relay_worker(conf, jobs):
    client = None
    while True:
        rcpt, data = jobs.get()
        for _attempt in range(3):
            try:
                if client is None:
                    client = smtplib.SMTP(*conf.smarthost, timeout=30)
                client.sendmail("bench@source.test", [rcpt], data)
                break
            except (OSError, smtplib.SMTPException):
                client = None
                time.sleep(0.2)


def smtp_handler(conf, jobs):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            w = self.wfile.write
            w(b"220 bench.test ESMTP selftest\r\n")
            rcpts = []
            for line in self.rfile:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    w(b"250 bench.test\r\n")
                elif verb == b"MAIL":
                    rcpts = []
                    w(b"250 ok\r\n")
                elif verb == b"RCPT":
                    rcpts.append(line.split(b"<", 1)[1].split(b">", 1)[0].decode())
                    w(b"250 ok\r\n")
                elif verb == b"DATA":
                    w(b"354 go\r\n")
                    self.data(rcpts)
                    w(b"250 ok\r\n")
                elif verb == b"QUIT":
                    w(b"221 bye\r\n")
                    return
                else:
                    w(b"250 ok\r\n")

        def data(self, rcpts):
            chunks = []
            for line in self.rfile:
                if line == b".\r\n":
                    break
                chunks.append(line[1:] if line.startswith(b".") else line)
            data = b"".join(chunks)
            for r in rcpts:
                if r.partition("@")[2] in conf.local:
                    deliver(conf, r, data)
                elif conf.smarthost:
                    jobs.put((r, data))
    return Handler


def pop3_handler(conf):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            w = self.wfile.write
            w(b"+OK selftest\r\n")
            user, msgs, deleted = None, [], set()
            for line in self.rfile:
                parts = line.decode().split()
                cmd, arg = parts[0].upper(), parts[1:]
                if cmd == "USER":
                    user = arg[0]
                    w(b"+OK\r\n")
                elif cmd == "PASS":
                    if conf.users.get(user) != arg[0]:
                        w(b"-ERR auth\r\n")
                        continue
                    new = os.path.join(conf.maildir(user), "new")
                    msgs = [os.path.join(new, n) for n in sorted(os.listdir(new))]
                    w(b"+OK\r\n")
                elif cmd == "STAT":
                    w(b"+OK %d %d\r\n" % (len(msgs), sum(map(os.path.getsize, msgs))))
                elif cmd in ("LIST", "UIDL"):
                    w(b"+OK\r\n")
                    for i, m in enumerate(msgs, 1):
                        val = os.path.getsize(m) if cmd == "LIST" else os.path.basename(m)
                        w(f"{i} {val}\r\n".encode())
                    w(b".\r\n")
                elif cmd == "RETR":
                    with open(msgs[int(arg[0]) - 1], "rb") as f:
                        body = f.read().replace(b"\n", b"\r\n")
                    w(b"+OK\r\n" + body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
                elif cmd == "DELE":
                    deleted.add(int(arg[0]))
                    w(b"+OK\r\n")
                elif cmd == "QUIT":
                    for i in deleted:
                        os.unlink(msgs[i - 1])
                    w(b"+OK bye\r\n")
                    return
                else:
                    w(b"-ERR\r\n")
    return Handler


def main():
    if len(sys.argv) != 4 or sys.argv[1:3] != ["serve", "-c"]:
        sys.exit("usage: selftest_tern.py serve -c FILE")
    conf = Conf(sys.argv[3])
    jobs = queue.Queue()
    if os.environ.get("SELFTEST_NO_POP3"):
        conf.pop3 = None
    if os.environ.get("SELFTEST_NO_RELAY"):
        conf.smarthost = None
    if os.environ.get("SELFTEST_NO_DELIVERY"):
        conf.local = []
    if conf.smarthost:
        threading.Thread(target=relay_worker, args=(conf, jobs), daemon=True).start()
    servers = [Server(conf.smtp, smtp_handler(conf, jobs))]
    if conf.pop3:
        servers.append(Server(conf.pop3, pop3_handler(conf)))
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("selftest tern: listening", file=sys.stderr, flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()

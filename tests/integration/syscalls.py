"""Record the system calls of a running tern with strace and check the
order in which its files become durable.

    with Recorder(t.proc.pid) as rec:
        ... send mail ...
    events = rec.events()

strace runs with -f (every thread, and threads made later) and -yy (each
descriptor printed with its path or its TCP endpoints), so the checks need
neither file descriptor bookkeeping nor tern's internal names: they look
at what reached the disk (write, sync, rename, mkdir on paths) and at what
reached the client (the reply bytes written on its socket).

Each event has the position of its entry and of its exit in strace's
output.  strace reports a call's exit before the thread returns to user
space, so a sync whose exit comes before a write's entry finished before
that write began, whichever threads made them.
"""
import os
import re
import shutil
import subprocess
import time

STRACE = shutil.which("strace") or "/usr/bin/strace"

TRACED = ("mkdir,mkdirat,fsync,fdatasync,sync_file_range,syncfs,sync,"
          "rename,renameat,renameat2,link,linkat,"
          "write,writev,pwrite64,pwritev,pwritev2,sendmsg,sendto,copy_file_range,ftruncate,fallocate")
SYNCS = ("fsync", "fdatasync")
RENAMES = ("rename", "renameat", "renameat2", "link", "linkat")
DATA = ("write", "writev", "pwrite64", "pwritev", "pwritev2", "ftruncate", "fallocate")


def strace_usable():
    """None when strace can trace here, else why not (for pytest.skip)."""
    if not os.path.exists(STRACE):
        return "strace is not installed"
    p = subprocess.run([STRACE, "-f", "-qq", "-e", "trace=write", "-o", "/dev/null", "true"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return f"strace cannot trace here: {p.stderr.strip()}"
    # attaching to a running process may be forbidden (ptrace_scope)
    target = subprocess.Popen(["sleep", "30"])
    try:
        p = subprocess.run([STRACE, "-qq", "-e", "trace=none", "-o", "/dev/null", "-p", str(target.pid)],
                           capture_output=True, text=True, timeout=1)
        said = p.stderr.strip()
    except subprocess.TimeoutExpired:
        said = None           # attached, and tracing until stopped: fine
    finally:
        target.kill()
        target.wait()
    if said and "attach" in said and "Operation not permitted" in said:
        return f"strace cannot attach to a running process here: {said}"
    return None


class Event:
    def __init__(self, pid, name, args, ret, entry, exit):
        self.pid, self.name, self.args, self.ret = pid, name, args, ret
        self.entry, self.exit = entry, exit

    def fd_path(self, n=0):
        """The path strace printed for the n-th descriptor argument."""
        fds = re.findall(r"(?:^|, )(?:-?\d+|AT_FDCWD)<([^>]*)>", self.args)
        return fds[n] if n < len(fds) else None

    def paths(self):
        """The quoted string arguments (paths, for mkdir and rename)."""
        return [decode(s) for s in re.findall(r'"((?:[^"\\]|\\.)*)"', self.args)]

    def __repr__(self):
        return f"<{self.entry}/{self.exit} {self.pid} {self.name}({self.args[:120]}) = {self.ret}>"


def decode(s):
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)),
                  s.replace('\\"', '"').replace("\\\\", "\\"))


LINE = re.compile(r"^(\d+) +(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\) += (-?\d+|\?)", re.S)
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$", re.S)


def parse(text):
    events, pending = [], {}
    for i, line in enumerate(text.splitlines()):
        m = LINE.match(line)
        if not m:
            continue
        pid, rest = int(m.group(1)), m.group(2)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (i, rest[: -len("<unfinished ...>")].rstrip())
            continue
        r = RESUMED.match(rest)
        if r:
            if pid not in pending:
                continue
            entry, head = pending.pop(pid)
            rest = head + r.group(2)
        else:
            entry = i
        c = CALL.match(rest)
        if c:
            ret = int(c.group(3)) if c.group(3) != "?" else None
            events.append(Event(pid, c.group(1), c.group(2), ret, entry, i))
    return events


class Recorder:
    """strace -f attached to a running process for the duration of a with
    block; the output is kept in path."""

    def __init__(self, pid, path, trace=TRACED):
        self.pid, self.path, self.trace = pid, path, trace

    def __enter__(self):
        self.err = open(self.path + ".err", "w+")
        self.proc = subprocess.Popen(
            [STRACE, "-f", "-yy", "-s", "4096", "-e", "trace=" + self.trace, "-e", "signal=none",
             "-o", self.path, "-p", str(self.pid)], stderr=self.err)
        deadline = time.time() + 20
        while time.time() < deadline:
            self.err.seek(0)
            if " attached" in self.err.read():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.err.seek(0)
        raise AssertionError("strace did not attach: " + self.err.read())

    def __exit__(self, *exc):
        self.proc.send_signal(2)      # SIGINT: strace detaches, tern goes on
        self.proc.wait(20)
        self.err.close()

    def events(self):
        with open(self.path, errors="replace") as f:
            return parse(f.read())


def socket_writes(events, client_port):
    """Writes on the server's end of the client connection at client_port,
    as (event, reply codes that start a line of the data written)."""
    end = re.compile(r"<TCP(?:v6)?:\[[^\]]*->[^\]]*:%d\]>" % client_port)
    out = []
    for e in events:
        if e.name in ("write", "writev", "sendmsg", "sendto") and end.search(e.args.split(",", 1)[0]):
            data = "".join(decode(s) for s in re.findall(r'"((?:[^"\\]|\\.)*)"', e.args))
            out.append((e, re.findall(r"(?:^|\\r\\n|\r\n)(\d{3})[ -]", data)))
    return out


def final_reply_after_data(events, client_port):
    """(the write of the 354, the write of the reply after the data)."""
    writes = socket_writes(events, client_port)
    for k, (e, codes) in enumerate(writes):
        if "354" in codes:
            for e2, codes2 in writes[k + 1:]:
                if codes2:
                    return e, e2, codes2[0]
    raise AssertionError(f"no reply after DATA on port {client_port}: {writes}")


def check_commit_durable(events, ren, reply):
    """Problems with the file that ren (a rename or link) put in place,
    judged at the reply write: its data synced after its last write and
    before the rename, the rename done, its directory synced after."""
    problems = []
    src, dst = ren.paths()[:2]
    if src == "" and "AT_EMPTY_PATH" in ren.args:
        src = ren.fd_path(0)      # linkat of an O_TMPFILE descriptor
    m = re.fullmatch(r"/proc/self/fd/(\d+)", src)
    if m:
        # the same, by its /proc name (no CAP_DAC_READ_SEARCH before Linux
        # 6.10): the descriptor's path is the one the last call on it showed
        fd = m.group(1) + "<"
        last = [e for e in events if e.exit < ren.entry and e.args.startswith(fd)]
        src = last[-1].fd_path(0) if last else src
    last_data = max([e.exit for e in events
                     if e.exit < ren.entry and (
                         (e.name in DATA and e.fd_path(0) == src) or
                         (e.name == "copy_file_range" and e.fd_path(1) == src))], default=-1)
    synced = [e for e in events if e.name in SYNCS and e.fd_path(0) == src and e.ret == 0
              and e.entry > last_data and e.exit < ren.entry]
    if not synced:
        problems.append(f"{dst}: data not synced between its last write and its rename")
    if ren.ret != 0:
        problems.append(f"{dst}: rename failed: {ren}")
    if ren.exit > reply.entry:
        problems.append(f"{dst}: renamed after the reply")
    d = os.path.dirname(dst)
    dsync = [e for e in events if e.name in SYNCS and e.fd_path(0) == d and e.ret == 0
             and e.entry > ren.exit and e.exit < reply.entry]
    if not dsync:
        problems.append(f"{dst}: directory {d} not synced between the rename and the reply")
    return problems


def check_new_dirs_durable(events, start, ren, reply):
    """Every directory above the file ren put in place that was made
    between start and ren was synced, and so was its parent, after it was
    made and before the reply."""
    problems = []
    dst = os.path.normpath(ren.paths()[1])
    for e in events:
        if e.name not in ("mkdir", "mkdirat") or e.ret != 0 or not (start.entry < e.exit < ren.entry):
            continue
        path = os.path.normpath(e.paths()[0])
        if not dst.startswith(path + "/"):
            continue
        for want in (path, os.path.dirname(path)):
            if not any(s.name == "fsync" and s.ret == 0 and os.path.normpath(s.fd_path(0) or "") == want
                       and s.entry > e.exit and s.exit < reply.entry for s in events):
                problems.append(f"made {path}: {want} not synced before the reply")
    return problems


def commits_between(events, start, reply, under):
    """Renames and links into a directory below `under` between the two."""
    return [e for e in events if e.name in RENAMES and start.entry < e.entry < reply.entry
            and len(e.paths()) >= 2 and e.paths()[1].startswith(under.rstrip("/") + "/")]

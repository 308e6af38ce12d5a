"""IMAP with real clients against the real binary: curl (imaps:// and
imap:// with STARTTLS: list, fetch by UID, append, a custom FETCH) and
mbsync (isync) syncing INBOX and Sent both ways between tern and a local
Maildir: messages down, a local message up, a local flag change up;
mutt flagging in batch mode; Dovecot's imapd (a private instance as the
benchmail user) opening the Maildir tern wrote and the other way round;
fetchmail over IMAPS and STARTTLS into an mda."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from test_imap import ALICE, SERVICES, deliver, imaps, msg

sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib  # noqa: E402 - the Dovecot config the benches use too

CURL = shutil.which("curl")
MBSYNC = shutil.which("mbsync")


def curl(t, url, *args, service="imaps"):
    scheme = "imaps" if service == "imaps" else "imap"
    extra = ["--ssl-reqd"] if service == "imap" else []
    r = subprocess.run([CURL, "-s", "-S", "-k", "--user", f"{ALICE}:alicepw", *extra, *args,
                        f"{scheme}://127.0.0.1:{t.port(service)}/{url}"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode() + t.log()[-2000:]
    return r.stdout.decode("latin-1")


@pytest.mark.skipif(CURL is None, reason="curl not installed")
def test_curl_list_fetch_append(make_tern, tmp_path):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1)])
    out = curl(t, "")
    assert '* LIST (\\HasNoChildren \\Sent) "/" Sent' in out
    assert '"/" INBOX' in out
    body = curl(t, "INBOX;UID=1")
    assert "Subject: message 1" in body and "body of 1" in body
    up = tmp_path / "up.eml"
    up.write_bytes(b"Subject: uploaded\r\n\r\nfrom curl\r\n")
    curl(t, "Sent", "-T", str(up))
    cur = os.listdir(os.path.join(t.maildir(ALICE), ".Sent", "cur"))
    assert len(cur) == 1
    # imap:// with STARTTLS (LOGINDISABLED before it)
    assert "from curl" in curl(t, "Sent;UID=1", service="imap")
    assert "* 1 FETCH (FLAGS (\\Seen))" in curl(t, "INBOX", "-X", "FETCH 1:* (FLAGS)")


@pytest.mark.skipif(MBSYNC is None, reason="mbsync (isync) not installed")
def test_mbsync_both_ways(make_tern, tmp_path):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2)])
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount tern
Host 127.0.0.1
Port {t.port('imaps')}
User {ALICE}
Pass alicepw
SSLType IMAPS
CertificateFile {t.state}/tls/cert.pem

IMAPStore far
Account tern

MaildirStore near
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :far:
Near :near:
Patterns INBOX Sent
Create Both
Expunge Both
Sync All
SyncState *
""")

    def sync():
        r = subprocess.run([MBSYNC, "-c", str(rc), "sync"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr + t.log()[-3000:]

    sync()
    inbox = local / "INBOX"
    got = sorted(os.listdir(inbox / "cur")) + sorted(os.listdir(inbox / "new"))
    assert len(got) == 2, got
    assert (local / "Sent").is_dir()
    # up: a message written locally into Sent, and a flag set locally
    (local / "Sent" / "new" / "1000.local.host").write_text("Subject: from mbsync\n\nlocal body\n")
    d = inbox / "cur" if os.listdir(inbox / "cur") else inbox / "new"
    name = sorted(os.listdir(d))[0]
    base = name.split(":2,")[0]
    os.rename(d / name, inbox / "cur" / (base + ":2,F"))
    sync()
    sent = os.listdir(os.path.join(t.maildir(ALICE), ".Sent", "cur"))
    assert len(sent) == 1, sent
    with open(os.path.join(t.maildir(ALICE), ".Sent", "cur", sent[0])) as f:
        assert "local body" in f.read()
    cur = os.listdir(os.path.join(t.maildir(ALICE), "cur"))
    assert sum(1 for n in cur if n.split(":2,")[1].find("F") >= 0) == 1, cur
    # down again: a new delivery arrives locally on the next sync
    deliver(t, [msg(3)])
    sync()
    got = os.listdir(inbox / "cur") + os.listdir(inbox / "new")
    assert len(got) == 3, got


MUTT = shutil.which("mutt")
SCRIPT = shutil.which("script")


@pytest.mark.skipif(MUTT is None or SCRIPT is None, reason="mutt or script(1) not installed")
def test_mutt_reads_and_flags(make_tern, tmp_path):
    """mutt over IMAPS, driven by pushed keys under script(1) (it wants a
    terminal): it opens INBOX, flags the message and syncs; the flag is in
    the Maildir file name."""
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1)])
    url = f"imaps://127.0.0.1:{t.port('imaps')}/"
    rc = tmp_path / "muttrc"
    rc.write_text(f"""set imap_user = "{ALICE}"
set imap_pass = "alicepw"
set certificate_file = "{t.state}/tls/cert.pem"
set ssl_verify_host = no
set ssl_force_tls = yes
set header_cache = ""
set folder = "{url}"
set spoolfile = "{url}INBOX"
set quit = yes
set move = no
set wait_key = no
set timeout = 1
""")
    cmd = f"mutt -n -F {rc} -f {url}INBOX -e 'push \"<flag-message><sync-mailbox><quit>\"'"
    env = dict(os.environ, TERM="xterm", HOME=str(tmp_path))
    with open(os.devnull) as null:
        r = subprocess.run([SCRIPT, "-qfec", cmd, "/dev/null"], stdin=null, capture_output=True,
                           env=env, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:]
    cur = os.listdir(os.path.join(t.maildir(ALICE), "cur"))
    assert len(cur) == 1, cur
    info = cur[0].rsplit(":2,", 1)[1]
    flags = "".join(c for c in info if c.isupper())
    letters = [c for c in info if c.islower()]
    assert flags == "F", cur
    # mutt (mark_old, the default) also stores its "Old" keyword on IMAP:
    # a keyword is a Dovecot letter named by the folder's dovecot-keywords
    names = {}
    if letters:
        with open(os.path.join(t.maildir(ALICE), "dovecot-keywords")) as f:
            for line in f:
                n, name = line.split(None, 1)
                names[chr(ord("a") + int(n))] = name.strip()
    assert all(names.get(c) == "Old" for c in letters), (cur, names)


# ---- Dovecot's imapd on the Maildir tern wrote, and back ----------------------------

DOVECOT = shutil.which("dovecot") or (os.path.exists("/usr/sbin/dovecot") and "/usr/sbin/dovecot")
DOVECOT_IMAP = os.path.exists("/usr/lib/dovecot/imap")
# "/" as the hierarchy separator (Maildir++ on disk, as tern keeps it)
NAMESPACE = """\
namespace inbox {
  inbox = yes
  separator = /
}
"""


class DovecotImap:
    """A private Dovecot imapd on 127.0.0.1: its own dovecot.conf (no system
    config), base_dir and logs in dir, passwd-file auth, the user's mail in
    home/Maildir with "/" as the hierarchy separator (Maildir++ on disk, as
    tern keeps it)."""

    def __init__(self, dir, user, password, home):
        from conftest import free_port
        self.dir = str(dir)
        self.port = free_port()
        uid, gid = benchlib.ensure_user()
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.dir, d))
        passwd = benchlib.dovecot_passwd(self.dir, user, password, uid, gid, home)
        self.log = os.path.join(self.dir, "dovecot.log")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(benchlib.dovecot_conf(self.dir, passwd, "imap", uid=uid, mail_location="maildir:~/Maildir",
                                          extra=NAMESPACE,
                                          services=benchlib.dovecot_imap_listener(self.port)))
        self.proc = None

    def start(self):
        from conftest import wait_port
        self.out = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdout=self.out,
                                     stderr=subprocess.STDOUT)
        assert wait_port(self.port), self.logs()
        return self

    def logs(self):
        text = ""
        for n in ("dovecot.log", "stderr.log"):
            try:
                with open(os.path.join(self.dir, n), errors="replace") as f:
                    text += f.read()[-3000:]
            except OSError:
                pass
        return text

    def client(self):
        import imaplib
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        c.login(ALICE, "alicepw")
        return c

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run(["doveadm", "-c", self.conf, "stop"], capture_output=True, timeout=30)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


@pytest.fixture
def shared_base():
    """A work dir other users can traverse (Dovecot's mail process runs as
    benchmail and must reach the Maildir tern wrote)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="tern-dovecot-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fetch_map(c, what):
    """{UID: (flags set, payload bytes or None)} of FETCH 1:* (UID FLAGS what)."""
    typ, data = c.fetch("1:*", f"(UID FLAGS {what})")
    assert typ == "OK", data
    out = {}
    for d in data:
        if not isinstance(d, tuple):
            if d == b")" or not d:
                continue
            head, payload = d, None
        else:
            head, payload = d
        m = re.search(rb"UID (\d+)", head)
        fl = re.search(rb"FLAGS \(([^)]*)\)", head)
        out[int(m.group(1))] = (set(fl.group(1).decode().split()), payload)
    return out


def messages_by_subject(c, mailbox):
    """{subject: (flags, RFC822.SIZE, INTERNALDATE, body)} of a mailbox."""
    typ, data = c.select(mailbox)
    assert typ == "OK", (mailbox, data)
    if data == [b"0"]:
        return {}
    typ, data = c.fetch("1:*", "(FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])")
    assert typ == "OK", data
    out = {}
    for d in data:
        if not isinstance(d, tuple):
            continue
        head, body = d
        fl = set(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split())
        size = int(re.search(rb"RFC822.SIZE (\d+)", head).group(1))
        date = re.search(rb'INTERNALDATE "([^"]+)"', head).group(1).decode()
        subj = re.search(rb"Subject: ([^\r\n]*)", body).group(1).decode()
        out[subj] = (fl - {"\\Recent"}, size, date, body)
    return out


def mailbox_names(c):
    typ, data = c.list('""', "*")
    assert typ == "OK", data
    return {re.search(rb'"/" "?([^"]*)"?$', d).group(1).decode() for d in data}


@pytest.mark.skipif(not DOVECOT or not DOVECOT_IMAP, reason="dovecot-imapd not installed")
def test_dovecot_reads_what_tern_wrote_and_back(shared_base):
    """tern sets flags, creates folders, moves and appends; Dovecot's imapd,
    opening the same Maildir, sees the same folders, messages (octet for
    octet, same RFC822.SIZE and INTERNALDATE) and system flags.  Then
    Dovecot changes flags, creates a folder and appends, and tern sees
    that, and a flag tern sets later keeps the letter of a keyword Dovecot
    set.  Keywords agree both ways: letters after the flags in the name,
    named by the folder's dovecot-keywords, as Dovecot keeps them."""
    from conftest import Tern
    t = Tern(os.path.join(shared_base, "tern"), services=SERVICES).start()
    dove = None
    try:
        deliver(t, [msg(1), msg(2), msg(3, "to be moved\r\n")])
        c = imaps(t)
        c.select("INBOX")
        assert c.store("1", "+FLAGS", "(\\Flagged \\Seen)")[0] == "OK"
        assert c.store("2", "+FLAGS", "(\\Answered $Work)")[0] == "OK"
        assert c.create("Work/Projects")[0] == "OK"
        assert c.uid("MOVE", "3", "Work/Projects")[0] == "OK"
        assert c.append("Sent", "(\\Seen \\Draft)", '"05-Mar-2023 12:34:56 +0000"',
                        b"Subject: draft\r\nFrom: alice@example.test\r\n\r\nhello\r\n")[0] == "OK"
        assert c.subscribe("Work/Projects")[0] == "OK"
        tern_view = {mb: messages_by_subject(c, mb) for mb in ("INBOX", "Work/Projects", "Sent")}
        tern_names = mailbox_names(c)
        c.logout()
        assert set(tern_view["INBOX"]) == {"message 1", "message 2"}

        # Dovecot's mail process runs as benchmail: it gets the tree
        home = os.path.dirname(t.maildir(ALICE))
        uid, gid = benchlib.ensure_user()
        p = home
        while p != shared_base:
            os.chmod(p, os.stat(p).st_mode | 0o711)
            p = os.path.dirname(p)
        benchlib.chown_tree(home, uid, gid)
        subs_before = open(os.path.join(t.maildir(ALICE), "subscriptions"), "rb").read()
        dove = DovecotImap(os.path.join(shared_base, "dovecot"), ALICE, "alicepw", home).start()
        d = dove.client()
        names = mailbox_names(d)
        for mb in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Work", "Work/Projects"):
            assert mb in names, (names, dove.logs())
        assert tern_names - {"Work"} <= names, (tern_names, names)
        typ, data = d.lsub('""', "*")
        subs = open(os.path.join(t.maildir(ALICE), "subscriptions"), "rb").read()
        assert any(x and x.endswith(b'"/" Work/Projects') for x in data), (data, subs_before, subs, dove.logs())  # tern's file
        for mb, want in tern_view.items():
            got = messages_by_subject(d, mb)
            assert set(got) == set(want), (mb, got.keys(), want.keys())
            for subj, (fl, size, date, body) in want.items():
                gfl, gsize, gdate, gbody = got[subj]
                assert gfl == fl, (mb, subj, gfl, fl)   # keywords too
                assert (gsize, gdate, gbody) == (size, date, body), (mb, subj)
        assert tern_view["Sent"]["draft"][2] == "05-Mar-2023 12:34:56 +0000"

        # the other way: Dovecot changes flags, creates a folder, appends
        d.select("INBOX")
        uids = {v[1][:40]: k for k, v in fetch_map(d, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]").items()}
        u1 = [u for h, u in uids.items() if b"message 1" in h][0]
        u2 = [u for h, u in uids.items() if b"message 2" in h][0]
        assert d.uid("STORE", str(u1), "-FLAGS", "(\\Seen)")[0] == "OK"
        assert d.uid("STORE", str(u1), "+FLAGS", "($Dove)")[0] == "OK"   # a letter in the name
        assert d.uid("STORE", str(u2), "FLAGS", "(\\Flagged \\Deleted)")[0] == "OK"
        d.select("Work/Projects")
        assert d.store("1", "+FLAGS", "(\\Seen)")[0] == "OK"
        assert d.create("Dove/Sub")[0] == "OK"
        assert d.append("Dove/Sub", "(\\Flagged)", '"07-Apr-2024 08:00:00 +0000"',
                        b"Subject: from dovecot\r\n\r\nwritten by dovecot\r\n")[0] == "OK"
        d.logout()
        dove.stop()

        c = imaps(t)
        assert {"Dove/Sub"} <= mailbox_names(c)
        got = messages_by_subject(c, "INBOX")
        assert got["message 1"][0] == {"\\Flagged", "$Dove"}, got["message 1"][0]
        # Dovecot's STORE FLAGS replaced the keywords too: $Work went
        assert got["message 2"][0] == {"\\Flagged", "\\Deleted"}, got["message 2"][0]
        assert messages_by_subject(c, "Work/Projects")["message 3"][0] == {"\\Seen"}
        sub = messages_by_subject(c, "Dove/Sub")
        assert list(sub) == ["from dovecot"]
        fl, size, date, body = sub["from dovecot"]
        assert fl == {"\\Flagged"} and date == "07-Apr-2024 08:00:00 +0000"
        assert body == b"Subject: from dovecot\r\n\r\nwritten by dovecot\r\n" and size == len(body)
        # tern renames the file for a flag: Dovecot's keyword stays; a
        # keyword new to both, set in tern, and one tern takes off
        c.select("INBOX")
        typ, data = c.search(None, "SUBJECT", '"message 1"')
        assert c.store(data[0].decode(), "+FLAGS", "(\\Answered $Later)")[0] == "OK"
        typ, data = c.search(None, "SUBJECT", '"message 2"')
        assert c.store(data[0].decode(), "+FLAGS", "($Dove)")[0] == "OK"
        assert c.store(data[0].decode(), "-FLAGS", "($Dove)")[0] == "OK"
        assert c.store(data[0].decode(), "+FLAGS", "($Work)")[0] == "OK"
        typ, data = c.search(None, "KEYWORD", "$Dove")
        assert data == [b"1"], data
        c.select("Work/Projects")
        assert c.store("1", "+FLAGS", "(NonJunk)")[0] == "OK"   # another folder: its own file
        c.logout()
        dove = DovecotImap(os.path.join(shared_base, "dovecot2"), ALICE, "alicepw", home).start()
        d = dove.client()
        got = messages_by_subject(d, "INBOX")
        assert got["message 1"][0] == {"\\Flagged", "\\Answered", "$Dove", "$Later"}, got["message 1"][0]
        assert got["message 2"][0] == {"\\Flagged", "\\Deleted", "$Work"}, got["message 2"][0]
        assert messages_by_subject(d, "Work/Projects")["message 3"][0] == {"\\Seen", "NonJunk"}
        d.logout()
        assert "unknown-" not in dove.logs()
    finally:
        if dove:
            dove.stop()
        t.stop()


# ---- fetchmail ---------------------------------------------------------------------

FETCHMAIL = shutil.which("fetchmail")


def run_fetchmail(t, tmp_path, tls, out, keep):
    """fetchmail --protocol IMAP from tern's INBOX into an mda that writes
    one file per message in out.  tls: "ssl" (IMAPS) or "starttls"."""
    rc = tmp_path / f"fetchmailrc-{tls}"
    port = t.port("imaps" if tls == "ssl" else "imap")
    tls_opts = "ssl" if tls == "ssl" else "sslproto tls1.2+"
    rc.write_text(f"""set no syslog
poll 127.0.0.1 service {port} protocol IMAP auth password
  user "{ALICE}" password "alicepw" is root here
  {tls_opts} sslcertck sslcertfile "{t.state}/tls/cert.pem" sslcommonname mx.test
  {"keep" if keep else "nokeep"}
  mda "/bin/sh -c 'cat > {out}/msg.$$'"
""")
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path))
    r = subprocess.run([FETCHMAIL, "-f", str(rc), "-i", str(tmp_path / "fetchids"), "-v", "-N"],
                       capture_output=True, text=True, timeout=60, env=env)
    return r


def fetched(out):
    got = {}
    for n in os.listdir(out):
        with open(os.path.join(out, n), "rb") as f:
            data = f.read()
        m = re.search(rb"Subject: ([^\r\n]*)", data)
        got[m.group(1).decode()] = data
    return got


@pytest.mark.skipif(FETCHMAIL is None, reason="fetchmail not installed")
def test_fetchmail_imaps_and_starttls(make_tern, tmp_path):
    t = make_tern(services=SERVICES)
    deliver(t, [msg(1), msg(2, "line two\r\n")])
    out = tmp_path / "out1"
    out.mkdir()
    # IMAPS, keeping the messages: fetched once each, whole, then \Seen
    r = run_fetchmail(t, tmp_path, "ssl", out, keep=True)
    assert r.returncode == 0, r.stdout + r.stderr + t.log()[-3000:]
    got = fetched(out)
    assert set(got) == {"message 1", "message 2"}, (got, r.stderr)
    assert b"body of 2\nline two\n" in got["message 2"].replace(b"\r\n", b"\n")
    assert b"From: Sender <sender@remote.test>" in got["message 1"]
    cur = os.listdir(os.path.join(t.maildir(ALICE), "cur"))
    assert len(cur) == 2 and all(n.endswith(":2,S") for n in cur), cur
    # STARTTLS on the plain port, not keeping: only the new (unseen)
    # message comes, and all of them are deleted and expunged after
    deliver(t, [msg(3)])
    out2 = tmp_path / "out2"
    out2.mkdir()
    r = run_fetchmail(t, tmp_path, "starttls", out2, keep=False)
    assert r.returncode == 0, r.stdout + r.stderr + t.log()[-3000:]
    assert "STARTTLS" in r.stderr + r.stdout, r.stderr
    assert set(fetched(out2)) == {"message 3"}, (fetched(out2), r.stderr)
    left = os.listdir(os.path.join(t.maildir(ALICE), "cur")) + os.listdir(os.path.join(t.maildir(ALICE), "new"))
    assert len(left) == 2 and all(":2,S" in n for n in left), left

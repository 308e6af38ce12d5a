"""IMAP with real clients against the real binary: curl (imaps:// and
imap:// with STARTTLS: list, fetch by UID, append, a custom FETCH) and
mbsync (isync) syncing INBOX and Sent both ways between tern and a local
Maildir: messages down, a local message up, a local flag change up."""
import os
import shutil
import subprocess

import pytest

from test_imap import ALICE, SERVICES, deliver, msg

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
    assert len(cur) == 1 and cur[0].endswith(":2,F"), cur

"""A real filter: rspamd from Debian, a private instance on loopback whose
proxy worker speaks milter and scans itself (self_scan, no Redis, no
controller or normal worker), its DNS pointed at a closed loopback port so
that nothing leaves the machine.  GTUBE is refused with rspamd's reply; a
clean message arrives with the header fields rspamd adds; a message that
scores over the (lowered) action thresholds arrives in Junk with its
Subject rewritten and rspamd's X-Spam: Yes."""
import email.utils
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, free_port, wait_port

sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib  # noqa: E402 - the rspamd config the milter bench uses too

RSPAMD = shutil.which("rspamd")
pytestmark = pytest.mark.skipif(RSPAMD is None, reason="rspamd not installed (scripts/setup.sh)")

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
USERS = {"alice@example.test": "alicepw", "bob@example.test": "bobpw"}

# low thresholds: a message without Message-ID: (MISSING_MID, 2.5) gets
# the add header action, one without Date: too (MISSING_DATE, 1 more) the
# rewrite subject action; a clean one scores below 1
ACTIONS = """
reject = 500;
add_header = 2;
rewrite_subject = 3.2;
greylist = null;
subject = "*** SPAM *** %s";
"""


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    base = tmp_path_factory.mktemp("rspamd")
    port = free_port()
    args = benchlib.rspamd_setup(base, port, free_port(), level="info",
                                 proxy_extra='    reject_message = "Spam message rejected";\n',
                                 local={"actions.conf": ACTIONS})
    out = open(base / "stdout", "wb")
    proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)
    try:
        # the first start compiles its regular expressions: up to a minute
        if not wait_port(port, timeout=240):
            raise RuntimeError("rspamd did not listen\n" + (base / "log" / "rspamd.log").read_text()[-3000:])
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()


def send(t, body):
    with t.smtp() as c:
        c.ehlo()
        assert c.mail("alice@example.test")[0] == 250
        assert c.rcpt("bob@example.test")[0] == 250
        c.putcmd("data")
        assert c.getreply()[0] == 354
        c.send(body.replace(b"\n", b"\r\n") + b"\r\n.\r\n")
        return c.getreply()


def test_gtube_refused_clean_delivered_with_rspamd_fields(make_tern, rspamd):
    t = make_tern(users=USERS, config={"milter": {"servers": f"inet:127.0.0.1:{rspamd}", "timeout": "60s"}})
    code, text = send(t, b"Subject: offer\nFrom: alice@example.test\nTo: bob@example.test\n\n" +
                      GTUBE.encode() + b"\n")
    assert code == 554 and b"5.7.1" in text, text
    assert 'verdict=replycode' in t.wait_log("event=milter_verdict")

    clean = (b"Subject: lunch\nFrom: alice@example.test\nTo: bob@example.test\n"
             b"Message-ID: <lunch.1@example.test>\nDate: " + email.utils.formatdate(usegmt=True).encode() + b"\n\n"
             b"Hello Bob, lunch tomorrow at noon?\n")
    code, text = send(t, clean)
    assert code == 250, text
    qid = text.decode().split()[-1]
    (m,) = t.wait_messages("bob@example.test", 1)
    head = m.split(b"\n\n")[0].decode()
    assert "\nX-Spamd-Result: default: False" in head, head
    assert f"\nX-Rspamd-Queue-Id: {qid}\n" in head      # the i macro
    assert "\nX-Rspamd-Action: no action" in head
    assert b"Hello Bob, lunch tomorrow at noon?" in m


def test_spam_scored_into_junk_with_rspamd_changes(make_tern, rspamd):
    """rspamd's add header action (X-Spam: Yes, an ADDHEADER) sends the
    message into Junk; its rewrite subject action (a CHGHEADER of
    Subject:) is applied."""
    t = make_tern(users=USERS, config={"milter": {"servers": f"inet:127.0.0.1:{rspamd}", "timeout": "60s",
                                                  "spam_header": "X-Spam: Yes"}})
    # no Message-ID: (MISSING_MID, 2.5): add header.  The Date: is now's:
    # rspamd scores a date over 6 hours old (DATE_IN_PAST, 1.0), which
    # would tip this message over into rewrite subject.
    date = email.utils.formatdate(usegmt=True).encode()
    spammy = (b"Subject: cheap offer\nFrom: alice@example.test\nTo: bob@example.test\n"
              b"Date: " + date + b"\n\nBuy now.\n")
    code, text = send(t, spammy)
    assert code == 250, text
    (m,) = t.wait_messages("bob@example.test", 1, sub=".Junk/new")
    head = m.split(b"\n\n")[0].decode()
    assert "\nX-Spam: Yes\n\n" in m.decode() and "\nX-Rspamd-Action: add header" in head, head
    assert "\nSubject: cheap offer\n" in head and m.endswith(b"\n\nBuy now.\n\n")
    assert t.messages("bob@example.test") == []
    t.wait_log("event=milter_spam")
    # no Date: either (MISSING_DATE, 1): rewrite subject
    code, text = send(t, spammy.replace(b"Date: " + date + b"\n", b""))
    assert code == 250, text
    (m,) = t.wait_messages("bob@example.test", 1)
    head = m.split(b"\n\n")[0].decode()
    assert "\nSubject: *** SPAM *** cheap offer\n" in head and head.count("Subject:") == 1, head
    assert "\nX-Rspamd-Action: rewrite subject" in head, head

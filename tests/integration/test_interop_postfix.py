"""tern's SMTP client against a real Postfix smtpd as its smarthost
(Debian 12: Postfix 3.7, which offers CHUNKING; SMTPUTF8 is off in the
bench set-up): BDAT instead of DATA, the message byte for byte in
Postfix's Maildir, and a message that needs SMTPUTF8 bounced with 5.6.7
instead of being sent.  The private Postfix is bench/benchlib's."""
import os
import shutil
import signal
import sys
import tempfile
import time

import pytest

from conftest import ROOT
from smtpraw import Raw

sys.path.insert(0, os.path.join(ROOT, "bench"))

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("postfix") is None,
                                reason="needs root and Postfix")


@pytest.fixture
def postfix():
    import benchlib
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    cleanup = benchlib.Cleanup()
    for s, h in saved.items():      # pytest keeps its own signal handling
        signal.signal(s, h)
    work = tempfile.mkdtemp(prefix="tern-pf-")
    os.chmod(work, 0o755)           # Postfix's daemons run as postfix
    pf = benchlib.Postfix(cleanup, work, "virtual")
    try:
        pf.start()
        yield pf
    finally:
        cleanup.run()
        shutil.rmtree(work, ignore_errors=True)


def test_bdat_to_postfix(make_tern, postfix):
    t = make_tern(config={"relay": {"smarthost": f"[127.0.0.1]:{postfix.port}"},
                          "delivery": {"client_timeout": "10s"}})
    wire = b"Subject: interop\r\n\r\n..\r\n...two\r\nend\r\n"        # dot-stuffed for DATA
    with Raw(t.port()) as c:
        c.cmd("EHLO client.test", 250)
        c.cmd("MAIL FROM:<alice@example.test>", 250)
        c.cmd("RCPT TO:<bench@bench.test>", 250)
        c.cmd("DATA", 354)
        c.send(wire + b".\r\n")
        c.expect(250, "2.0.0")
        c.cmd("MAIL FROM:<alice@example.test> SMTPUTF8", 250)
        c.cmd("RCPT TO:<j\xc3\xb6rg@bench.test>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: utf\r\n\r\nx\r\n.\r\n")
        c.expect(250, "2.0.0")
    t.wait_log("status=sent", timeout=30)
    t.wait_log("status=bounced dsn=5.6.7", timeout=30)
    deadline = time.time() + 30
    names = []
    while time.time() < deadline and not names:
        names = os.listdir(postfix.maildir_new) if os.path.isdir(postfix.maildir_new) else []
        time.sleep(0.05)
    assert len(names) == 1
    with open(os.path.join(postfix.maildir_new, names[0]), "rb") as f:
        got = f.read()
    # Postfix adds its own header fields; the body is as sent
    assert b"\nSubject: interop\n" in got and got.endswith(b"\n\n.\n..two\nend\n")
    # BDAT: the client went from the RCPT replies straight to the body
    log = t.log()
    assert " from=rcpt to=body" in log and " to=data" not in log

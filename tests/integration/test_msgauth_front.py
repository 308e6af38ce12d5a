"""The Authentication-Results field goes on top of a checked message
without the message being rewritten: it is the first field after the
mailbox's Return-Path/Delivered-To, tern's Received: follows it, and then
come the very octets the client sent (LF line ends), for a small message
(held in memory until the verdict) and for one over 1 MiB (past what a
stream holds back, so it goes on in the queue file, which keeps room in
front).  strace shows that tern never reads a message back to move it:
before, the field was put in front by moving the stored message up by
its length (pread and pwrite of all of it, on the event loop).
"""
import os
import re

import pytest

import syscalls
from test_msgauth import ar_fields, dns, mx, send, sender_key, signed  # noqa: F401 (fixtures)

NO_STRACE = syscalls.strace_usable()


def body_of(kib):
    line = "The quick brown fox jumps over the lazy dog, line %06d.\r\n"
    out, i = [], 0
    while sum(len(x) for x in out) < kib * 1024:
        out.append(line % i)
        i += 1
    return "".join(out)


def pread_bytes(events, under):
    """Octets tern read back with pread from files under its state dir."""
    total = 0
    for e in events:
        if e.name in ("pread64", "preadv", "preadv2") and e.ret and e.ret > 0:
            path = e.fd_path() or ""
            if path.startswith(under):
                total += e.ret
    return total


@pytest.mark.skipif(NO_STRACE is not None, reason=str(NO_STRACE))
@pytest.mark.parametrize("kib", [4, 1500])
def test_ar_on_top_and_message_untouched(make_tern, dns, sender_key, tmp_path, kib):  # noqa: F811
    t = mx(make_tern, dns)
    msg = signed(sender_key, body_of(kib))
    with syscalls.Recorder(t.proc.pid, str(tmp_path / "strace.out"), trace="pread64,preadv,preadv2") as rec:
        code, _ = send(t, "sig@signed.test", msg)
        assert code == 250
        got = t.wait_messages("alice@example.test", 1)[0]
    events = rec.events()

    sent = msg.replace(b"\r\n", b"\n")
    lines = got.split(b"\n")
    assert lines[0].startswith(b"Return-Path: ") and lines[1].startswith(b"Delivered-To: "), lines[:3]
    rest = b"\n".join(lines[2:])
    assert rest.startswith(b"Authentication-Results: "), rest[:200]
    ar = ar_fields(got)
    assert len(ar) == 1 and "dkim=pass" in ar[0] and "dmarc=pass" in ar[0], ar
    # the field (folded lines), then tern's Received:, then what was sent
    m = re.match(rb"Authentication-Results: [^\n]*\n(?:[ \t][^\n]*\n)*", rest)
    after = rest[m.end():]
    assert after.startswith(b"Received: "), after[:200]
    m = re.match(rb"Received: [^\n]*\n(?:[ \t][^\n]*\n)*", after)
    assert after[m.end():] == sent, "the message after tern's fields is not what was sent"
    # nothing was read back to make room in front
    moved = pread_bytes(events, os.path.realpath(t.state))
    assert moved < 64 * 1024, f"tern read back {moved} octets of a {len(sent)}-octet message"

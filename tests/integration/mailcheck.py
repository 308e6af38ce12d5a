"""Messages that say where they end, and checks that what was delivered
is whole: used by the disk-full and kill -9 tests."""
import os
import re

BODY_LINE = "x" * 76 + "\r\n"


def big_message(subject, kib, to="alice@example.test"):
    """About kib KiB, ending with the line "END <subject>"."""
    n = kib * 1024 // len(BODY_LINE)
    return (f"From: sender@example.test\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.test>\r\n\r\n" + BODY_LINE * n + f"END {subject}\r\n")


def check_complete(path):
    """A delivered Maildir file is whole: its size is the S= of its name and
    it ends with the END line of its own subject.  Returns the subject."""
    data = open(path, "rb").read()
    m = re.search(r",S=(\d+)", os.path.basename(path))
    assert m and int(m.group(1)) == len(data), f"{path}: {len(data)} bytes"
    subj = re.search(rb"\nSubject: (\S+)", data).group(1).decode()
    assert data.endswith(f"END {subj}\n".encode()), f"{path} cut short: ...{data[-60:]!r}"
    return subj


def delivered(t, addr):
    """Subjects of the messages in addr's Maildir new/, each checked whole."""
    d = os.path.join(t.maildir(addr), "new")
    if not os.path.isdir(d):
        return []
    return [check_complete(os.path.join(d, n)) for n in sorted(os.listdir(d))]


def mx_subjects(rx):
    """(subject, accepted recipients) of each message a fake MX (Receiver)
    took, each checked whole."""
    out = []
    for m in list(rx.messages):
        subj = re.search(rb"\nSubject: (\S+)", m["data"]).group(1).decode()
        assert m["data"].endswith(f"END {subj}\r\n".encode()), m["data"][-80:]
        out.append((subj, list(m["ok"])))
    return out

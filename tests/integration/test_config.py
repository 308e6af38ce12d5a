"""`tern check-config` and `tern serve` with good and bad files (errors as
FILE:LINE, non-zero exit), `tern example-config` round trip, and the
embedded development default driven with swaks."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import TERN_BIN, wait_port

GOOD = """\
; a comment
[server]
hostname = mx.example.test
state_dir = {state}

[smtp]
listen = 127.0.0.1:{port}, [::1]:{port}
max_message_size = 35M
max_recipients = 100
command_timeout = 5m
data_timeout = 90s
vrfy = off

[domains]
local = example.test example.org

[relay]
trusted_networks = 127.0.0.0/8 ::1 10.0.0.0/8

[queue]
retry = 30m
max_age = 5d
"""


def check(tmp_path, text, name="tern.conf"):
    path = tmp_path / name
    path.write_text(text)
    p = subprocess.run([TERN_BIN, "check-config", "-c", str(path)], capture_output=True, text=True,
                       timeout=20)
    return p, str(path)


def test_good_file_ok(tmp_path):
    p, path = check(tmp_path, GOOD.format(state=tmp_path / "st", port=2525))
    assert p.returncode == 0, p.stderr
    assert f"{path}: ok" in p.stdout
    assert p.stderr == ""


def test_example_config_checks_ok(tmp_path):
    ex = subprocess.run([TERN_BIN, "example-config"], capture_output=True, text=True, timeout=20)
    assert ex.returncode == 0
    assert "[smtp]" in ex.stdout and "max_message_size" in ex.stdout
    p, _ = check(tmp_path, ex.stdout)
    assert p.returncode == 0, p.stderr


BAD = [
    # (what, line to insert after [smtp] header, expected message fragment)
    ("unknown key", "max_mesage_size = 10M", r"unknown key 'max_mesage_size' in \[smtp\]"),
    ("bad duration", "command_timeout = 5 minutes", r"command_timeout"),
    ("bad duration unit", "data_timeout = 3y", r"data_timeout"),
    ("zero duration", "command_timeout = 0s", r"command_timeout"),
    ("bad size", "max_message_size = 35Q", r"max_message_size"),
    ("negative size", "max_message_size = -1", r"max_message_size"),
    ("size too small", "max_message_size = 10", r"max_message_size"),
    ("bad listen address", "listen = 127.0.0.1", r"listen"),
    ("bad listen host", "listen = 999.1.1.1:25", r"listen"),
    ("bad listen port", "listen = 127.0.0.1:65536", r"listen"),
    ("bad number", "max_recipients = many", r"max_recipients"),
    ("number out of bounds", "max_recipients = 0", r"max_recipients"),
    ("bad access", "vrfy = maybe", r"vrfy"),
    ("duplicate key", "max_recipients = 5\nmax_recipients = 6", r"set twice"),
]


@pytest.mark.parametrize("what,line,frag", BAD, ids=[b[0] for b in BAD])
def test_bad_value_reported_with_file_and_line(tmp_path, what, line, frag):
    text = GOOD.format(state=tmp_path / "st", port=2525)
    lines = text.splitlines()
    at = lines.index("[smtp]") + 1
    lines[at:at] = line.split("\n")
    bad_line = at + len(line.split("\n"))   # 1-based number of the last inserted line
    p, path = check(tmp_path, "\n".join(lines) + "\n")
    assert p.returncode != 0, p.stdout
    assert re.search(rf"^{re.escape(path)}:{bad_line}: .*{frag}", p.stderr, re.M), p.stderr
    assert "ok" not in p.stdout


def test_unknown_section(tmp_path):
    text = GOOD.format(state=tmp_path / "st", port=2525) + "\n[smpt]\nlisten = 127.0.0.1:25\n"
    n = text.count("\n")
    p, path = check(tmp_path, text)
    assert p.returncode != 0
    assert re.search(rf"^{re.escape(path)}:{n}: unknown section \[smpt\]", p.stderr, re.M), p.stderr


def test_syntax_error_line(tmp_path):
    text = "[server]\nhostname = a.test\nthis is not ini\n"
    p, path = check(tmp_path, text)
    assert p.returncode != 0
    assert f"{path}:3:" in p.stderr, p.stderr


def test_all_errors_reported_not_just_the_first(tmp_path):
    text = "[server]\nhostname = a.test\nbogus = 1\n[smtp]\nmax_message_size = huge\n"
    p, path = check(tmp_path, text)
    assert p.returncode != 0
    assert f"{path}:3:" in p.stderr and f"{path}:5:" in p.stderr, p.stderr


def test_missing_file(tmp_path):
    p = subprocess.run([TERN_BIN, "check-config", "-c", str(tmp_path / "nope.conf")],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "nope.conf" in p.stderr


def test_serve_with_bad_config_exits_nonzero(tmp_path):
    text = GOOD.format(state=tmp_path / "st", port=2525).replace("max_recipients = 100",
                                                                 "max_recipients = 100\nfoo = bar")
    path = tmp_path / "bad.conf"
    path.write_text(text)
    p = subprocess.run([TERN_BIN, "serve", "-c", str(path)], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert re.search(rf"{re.escape(str(path))}:\d+: unknown key 'foo' in \[smtp\]", p.stderr), p.stderr
    assert not os.path.exists(tmp_path / "st" / "queue")


def test_serve_with_unbindable_address_exits_nonzero(tmp_path, make_tern):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    t = make_tern(start=False, config={"smtp": {"listen": f"127.0.0.1:{port}"}})
    p = subprocess.run([TERN_BIN, "serve", "-c", t.conf_path], capture_output=True, text=True, timeout=20)
    busy.close()
    assert p.returncode != 0
    assert f"127.0.0.1:{port}" in p.stderr


def ports_free(ports):
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def test_builtin_default_with_swaks(tmp_path):
    if not ports_free([2525, 2587, 2465, 2110, 2995]):
        pytest.skip("the development default ports are in use")
    logp = tmp_path / "serve.log"
    with open(logp, "wb") as log:
        proc = subprocess.Popen([TERN_BIN, "serve"], cwd=tmp_path, stdout=log, stderr=log)
    try:
        assert wait_port(2525), logp.read_text()
        deadline = time.time() + 30
        while time.time() < deadline and "event=start " not in logp.read_text():
            time.sleep(0.05)
        text = logp.read_text()
        m = re.search(r"created user demo@localhost with password (\S+)", text)
        assert m, text
        assert "tern-data/mail/localhost/demo/Maildir/new/" in text
        p = subprocess.run(["swaks", "--server", "127.0.0.1:2525", "--to", "demo@localhost",
                            "--from", "someone@remote.test", "--header", "Subject: first light"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
        new = tmp_path / "tern-data" / "mail" / "localhost" / "demo" / "Maildir" / "new"
        deadline = time.time() + 30
        while time.time() < deadline and not (new.is_dir() and os.listdir(new)):
            time.sleep(0.05)
        files = os.listdir(new)
        assert len(files) == 1
        body = (new / files[0]).read_text()
        assert "Subject: first light" in body and "Delivered-To: demo@localhost" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    # the second start keeps the user and prints no new password
    with open(logp, "wb") as log:
        proc = subprocess.Popen([TERN_BIN, "serve"], cwd=tmp_path, stdout=log, stderr=log)
    try:
        assert wait_port(2525), logp.read_text()
        # SIGTERM is handled once start-up is complete
        deadline = time.time() + 30
        while time.time() < deadline and "event=start " not in logp.read_text():
            time.sleep(0.05)
        assert "password" not in logp.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_config_values_take_effect(make_tern):
    from smtpraw import Raw
    t = make_tern(config={"smtp": {"max_message_size": "512K"}, "server": {"hostname": "other.test"}})
    with Raw(t.port()) as c:
        assert c.greeting[1][0].startswith("220 other.test ")
        lines = c.cmd("EHLO client.test", 250)[1]
        assert "250-SIZE 524288" in lines

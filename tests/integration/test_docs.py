"""The documentation stays in step with the config table."""
import os
import re
import subprocess

from conftest import ROOT, TERN_BIN


def example_config():
    return subprocess.run([TERN_BIN, "example-config"], capture_output=True, text=True, check=True).stdout


def table_keys():
    keys, section = [], None
    for line in example_config().splitlines():
        m = re.match(r"^\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^(\w+)\s*=", line)
        if m:
            keys.append((section, m.group(1)))
    return keys


def test_example_file_is_generated_from_the_table():
    with open(os.path.join(ROOT, "etc", "tern.conf.example")) as f:
        assert f.read() == example_config(), "run: build/tern example-config > etc/tern.conf.example"


def test_example_file_passes_check_config():
    p = subprocess.run([TERN_BIN, "check-config", "-c", os.path.join(ROOT, "etc", "tern.conf.example")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_every_key_is_in_the_man_page():
    with open(os.path.join(ROOT, "doc", "tern.conf.5")) as f:
        man = f.read()
    keys = table_keys()
    assert len(keys) > 30
    missing = [f"[{s}] {k}" for s, k in keys if f"[{s}]" not in man or re.search(rf"\b{k}\b", man) is None]
    assert not missing, missing


def test_readme_shows_the_two_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    assert "make run" in text and "make test" in text


def test_every_log_event_is_in_the_man_page():
    """doc/tern.1's LOG EVENTS lists every event the code logs, so that
    operators can grep for it."""
    events = set()
    for d, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            if name.endswith(".c"):
                with open(os.path.join(d, name)) as f:
                    events |= set(re.findall(r'"event=([a-z_]+)', f.read()))
    assert len(events) > 40, sorted(events)
    with open(os.path.join(ROOT, "doc", "tern.1")) as f:
        man = f.read()
    section = man.split(".SH LOG EVENTS", 1)[1].split("\n.SH ", 1)[0]
    documented = set(re.findall(r"^\.B ([a-z_]+)$", section, re.M))
    assert not events - documented, sorted(events - documented)

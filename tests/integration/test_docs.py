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

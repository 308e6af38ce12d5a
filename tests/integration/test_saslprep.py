"""SASLprep (RFC 4013) end to end: `tern user` prepares the password it
stores, the server prepares the user name and the password it is given,
so "\u2168", "I\u00adX" and "IX" are one password; what SASLprep refuses is
refused with the reason."""
import pytest

from authutil import Dialog, Scram, b64, client_tls


def auth_plain(t, user, password):
    d = Dialog(t.port())
    d.cmd("EHLO x")
    return d.cmd("AUTH PLAIN " + b64(("\0" + user + "\0" + password).encode()))


@pytest.mark.parametrize("scheme", ["crypt", "plain", "scram-sha-256"])
def test_stored_password_is_prepared(make_tern, scheme):
    t = make_tern(services=("smtp", "submission"), users={})
    r = t.cli("user", "add", "dora@example.test", "--scheme", scheme, input="\u2168\n")
    assert r.returncode == 0, r.stderr
    text = open(t.users_path, encoding="utf-8").read()
    assert "\u2168" not in text
    if scheme == "plain":
        assert text == "dora@example.test:{PLAIN}IX\n"
    t.wait_log("event=reload reason=users_file_changed users=1")
    for pw in ("IX", "I\u00adX", "\u2168"):
        assert auth_plain(t, "dora@example.test", pw).startswith("235"), pw
    # The user name is prepared too (U+00AD maps to nothing).
    assert auth_plain(t, "do\u00adra@example.test", "IX").startswith("235")
    for pw in ("ix", "I X", "IX\a"):
        assert auth_plain(t, "dora@example.test", pw).startswith("535"), pw
    if scheme == "crypt":
        return
    # A SCRAM client derives its keys from the prepared password.
    c = t.smtp("submission")
    c.ehlo("client.test")
    c.starttls(context=client_tls())
    c.ehlo("client.test")
    obj = Scram("dora@example.test", "IX")
    assert c.auth("SCRAM-SHA-256", obj)[0] == 235
    assert obj.server_ok
    c.quit()
    assert "\u2168" not in t.log()


@pytest.mark.parametrize("password,reason", [
    ("a\u0007b", "prohibited character"),
    ("a\u200eb", "prohibited character"),
    ("\ue000pw", "prohibited character"),
    ("pw\u0221", "unassigned code point"),
    ("\u0627" "1", "bidi rules"),
])
def test_user_add_refuses_what_saslprep_refuses(make_tern, password, reason):
    t = make_tern(start=False, users={})
    r = t.cli("user", "add", "dora@example.test", input=password + "\n")
    assert r.returncode != 0
    assert reason in r.stderr and "SASLprep" in r.stderr, r.stderr
    assert open(t.users_path).read() == ""


def test_user_add_refuses_a_password_that_prepares_to_nothing(make_tern):
    t = make_tern(start=False, users={})
    r = t.cli("user", "add", "dora@example.test", input="\u00ad\u200b\n")
    assert r.returncode != 0 and "empty" in r.stderr, r.stderr

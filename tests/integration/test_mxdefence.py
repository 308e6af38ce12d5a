"""Defending the MX: DNS blocklists and allow lists (RFC 5782) at
connect and at RCPT, greylisting, and rates per client address.  The
lists are a private dnsmasq on loopback; clients come from addresses of
127.0.0.0/8, which trusted_networks leaves out here so that loopback is
not exempt."""
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import DNSMASQ, TERN_BIN, Dnsmasq, RawConn, recv_reply

UNTRUSTED = {"trusted_networks": "10.255.0.0/16"}


@pytest.fixture
def dns_port():
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq is not installed")
    dns = Dnsmasq([
        "--local=/bl.test/", "--local=/code.test/", "--local=/wl.test/",
        "--host-record=2.0.0.127.bl.test,127.0.0.2",       # 127.0.0.2 listed
        "--host-record=7.0.0.127.bl.test,127.0.0.2",       # 127.0.0.7 listed ...
        "--host-record=7.0.0.127.wl.test,127.0.0.10",      # ... and allowed
        "--host-record=5.0.0.127.code.test,127.0.0.2",     # 127.0.0.5: another code
        "--host-record=6.0.0.127.code.test,127.0.0.4",     # 127.0.0.6: the code
        "--host-record=8.0.0.127.wl.test,127.0.0.10",      # 127.0.0.8 allowed
    ])
    yield dns.port
    dns.stop()


def conf(dns_port, dnsbl=None, greylist=None, smtp=None, trusted=UNTRUSTED):
    c = {"relay": dict(trusted), "dns": {"servers": f"127.0.0.1:{dns_port}"}}
    if dnsbl:
        c["dnsbl"] = dnsbl
    if greylist:
        c["greylist"] = greylist
    if smtp:
        c["smtp"] = smtp
    return c


def raw(t, source, service="smtp"):
    """A raw socket from source with the greeting read."""
    c = socket.create_connection(("127.0.0.1", t.port(service)), timeout=15, source_address=(source, 0))
    s = RawConn(c.family, c.type, c.proto, fileno=c.detach())
    s.settimeout(15)
    s.greeting = recv_reply(s, timeout=15)
    return s


def cmd(s, line):
    s.sendall(line.encode() + b"\r\n")
    return recv_reply(s, timeout=15)


def rcpt_reply(t, source, rcpt="alice@example.test", sender="sender@far.test"):
    s = raw(t, source)
    try:
        assert s.greeting.startswith("220"), s.greeting
        cmd(s, "EHLO client.test")
        assert cmd(s, f"MAIL FROM:<{sender}>").startswith("250")
        return cmd(s, f"RCPT TO:<{rcpt}>")
    finally:
        s.close()


# ---- DNSBL at connect ----

def test_dnsbl_listed_at_connect_gets_554_then_only_quit(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, {"zones": "bl.test"}))
    s = raw(t, "127.0.0.2")
    assert s.greeting.startswith("554 5.7.1"), s.greeting
    assert "listed in bl.test" in s.greeting
    assert cmd(s, "EHLO client.test").startswith("503 5.7.1")
    assert cmd(s, "MAIL FROM:<a@far.test>").startswith("503")
    assert cmd(s, "QUIT").startswith("221")
    s.close()
    t.wait_log("event=dnsbl_listed ")
    assert re.search(r"event=dnsbl session=\w+ ip=127\.0\.0\.2 verdict=listed zone=bl.test", t.log())


def test_dnsbl_not_listed_at_connect(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, {"zones": "bl.test"}))
    assert rcpt_reply(t, "127.0.0.3").startswith("250")
    assert re.search(r"ip=127\.0\.0\.3 verdict=pass zone=- timed_out=0 failed=0", t.log())


def test_dnsbl_specific_code(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, {"zones": "code.test=127.0.0.4"}))
    assert raw(t, "127.0.0.5").greeting.startswith("220"), "another code does not list"
    g = raw(t, "127.0.0.6").greeting
    assert g.startswith("554 5.7.1") and "code.test" in g, g


def test_dnsbl_timeout_lets_the_client_pass(make_tern, silent_dns):
    t = make_tern(config=conf(silent_dns, {"zones": "bl.test", "timeout": "1s"}))
    start = time.time()
    s = raw(t, "127.0.0.2")
    took = time.time() - start
    assert s.greeting.startswith("220"), s.greeting
    assert 0.8 <= took < 5, took
    s.close()
    t.wait_log("event=dnsbl_timeout ")
    assert "zone=bl.test action=pass" in t.log()


def test_dnsbl_exempt_trusted_and_submission(make_tern, dns_port):
    t = make_tern(services=("smtp", "submission"),
                  config=conf(dns_port, {"zones": "bl.test"}, trusted={"trusted_networks": "127.0.0.2/32"}))
    assert raw(t, "127.0.0.2").greeting.startswith("220")          # trusted
    t2 = make_tern(services=("smtp", "submission"), config=conf(dns_port, {"zones": "bl.test"}))
    assert raw(t2, "127.0.0.2").greeting.startswith("554")
    assert raw(t2, "127.0.0.2", "submission").greeting.startswith("220")   # submission: AUTH needed
    assert "event=dnsbl_listed" not in t.log()


def test_dnsbl_answers_are_cached(make_tern):
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq is not installed")
    # dnsmasq gives its own records TTL 0 (not to be cached) unless told
    dns = Dnsmasq(["--local-ttl=300", "--local=/bl.test/", "--host-record=2.0.0.127.bl.test,127.0.0.2"])
    try:
        t = make_tern(config=conf(dns.port, {"zones": "bl.test", "timeout": "1s"}))
        assert raw(t, "127.0.0.2").greeting.startswith("554")
    finally:
        dns.stop()
    # the list is gone: the answer comes from the cache, at once
    start = time.time()
    assert raw(t, "127.0.0.2").greeting.startswith("554")
    assert time.time() - start < 0.8
    assert "event=dnsbl_timeout" not in t.log()


def test_dnsbl_cache_is_bounded(make_tern):
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq is not installed")
    dns = Dnsmasq(["--local-ttl=300", "--local=/bl.test/", "--host-record=2.0.0.127.bl.test,127.0.0.2"])
    try:
        t = make_tern(config=conf(dns.port, {"zones": "bl.test", "timeout": "1s", "cache_max": "1"}))
        assert raw(t, "127.0.0.2").greeting.startswith("554")
        assert raw(t, "127.0.0.3").greeting.startswith("220")   # its answer takes the one slot
    finally:
        dns.stop()
    # 127.0.0.2's answer was dropped: the list is asked again, and is gone
    assert raw(t, "127.0.0.2").greeting.startswith("220")
    t.wait_log("zone=bl.test action=pass")   # failed (port unreachable) or timed out


# ---- DNSBL at RCPT ----

def test_dnsbl_at_rcpt(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, {"zones": "bl.test", "check_at": "rcpt"}))
    s = raw(t, "127.0.0.2")
    assert s.greeting.startswith("220"), s.greeting
    assert cmd(s, "EHLO client.test").startswith("250")
    assert cmd(s, "MAIL FROM:<a@far.test>").startswith("250")
    r = cmd(s, "RCPT TO:<alice@example.test>")
    assert r.startswith("554 5.7.1") and "listed in bl.test" in r, r
    assert cmd(s, "QUIT").startswith("221")
    assert rcpt_reply(t, "127.0.0.3").startswith("250")


def test_dnsbl_at_rcpt_pipelined_rcpt_waits_for_the_answer(make_tern, silent_dns):
    t = make_tern(config=conf(silent_dns, {"zones": "bl.test", "check_at": "rcpt", "timeout": "2s"}))
    s = raw(t, "127.0.0.2")
    cmd(s, "EHLO client.test")
    s.sendall(b"MAIL FROM:<a@far.test>\r\nRCPT TO:<alice@example.test>\r\nNOOP\r\n")
    out = ""
    while out.count("\r\n") < 3:
        out += s.recv(4096).decode()
    assert [l[:3] for l in out.split("\r\n") if l] == ["250", "250", "250"], out
    t.wait_log("event=dnsbl_timeout ")


def test_dnsbl_at_rcpt_authenticated_exempt(make_tern, dns_port):
    t = make_tern(services=("smtp", "submission"),
                  config=conf(dns_port, {"zones": "bl.test", "check_at": "rcpt"}))
    c = smtplib.SMTP("127.0.0.1", t.port(), local_hostname="client.test", timeout=15,
                     source_address=("127.0.0.2", 0))
    c.starttls(context=ssl._create_unverified_context())
    c.login("alice@example.test", "alicepw")
    c.mail("alice@example.test")
    code, _ = c.rcpt("bob@example.test")
    assert code == 250
    c.quit()


# ---- DNSWL ----

def test_dnswl_outweighs_the_blocklist(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, {"zones": "bl.test", "allow": "wl.test"}))
    assert raw(t, "127.0.0.7").greeting.startswith("220")
    t.wait_log("event=dnswl_listed ")
    assert re.search(r"ip=127\.0\.0\.7 verdict=allowed zone=wl.test", t.log())


# ---- greylisting ----

GREY = {"enabled": "yes", "delay": "2s", "expire": "1h"}
# The store keeps whole seconds: 3s after the 451 has come back, the
# server's clock has moved on by at least the 2s of the delay.
AFTER_DELAY = 3.05


def wait_until(pred, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = pred()
        if r:
            return r
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_greylist_first_early_after_delay_and_later(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, greylist=GREY))
    r = rcpt_reply(t, "127.0.0.3")
    first = time.time()
    assert r.startswith("451 4.7.1"), r
    assert rcpt_reply(t, "127.0.0.3").startswith("451 4.7.1"), "an early retry is still deferred"
    # after the delay: passes (wait with a deadline, no fixed sleep)
    wait_until(lambda: time.time() - first >= AFTER_DELAY)
    assert rcpt_reply(t, "127.0.0.3").startswith("250")
    assert rcpt_reply(t, "127.0.0.3").startswith("250"), "later ones pass at once"
    # the same /24, another host of the farm
    assert rcpt_reply(t, "127.0.0.4").startswith("250")
    log = t.log()
    for v in ("new", "early", "passed", "known"):
        assert f"verdict={v} " in log, v


def test_greylist_client_that_passed_skips_new_triplets(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, greylist=GREY))
    assert rcpt_reply(t, "127.0.0.3").startswith("451")
    first = time.time()
    wait_until(lambda: time.time() - first >= AFTER_DELAY)
    assert rcpt_reply(t, "127.0.0.3").startswith("250")
    assert rcpt_reply(t, "127.0.0.3", rcpt="bob@example.test", sender="other@far.test").startswith("250")


def test_greylist_survives_restart_and_crash(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, greylist=GREY))
    assert rcpt_reply(t, "127.0.0.3").startswith("451")
    first = time.time()
    t.restart()
    wait_until(lambda: time.time() - first >= AFTER_DELAY)
    assert rcpt_reply(t, "127.0.0.3").startswith("250"), "the first sighting survived the restart"
    assert rcpt_reply(t, "127.0.1.9").startswith("451")
    t.stop(sig=9)   # a crash: the records are in the kernel already
    t.start()
    assert rcpt_reply(t, "127.0.0.3").startswith("250")
    rcpt_reply(t, "127.0.1.9")
    # seen before the crash: early (or passed, had the start been slow), never new
    verdicts = re.findall(r"event=greylist session=\w+ ip=127\.0\.1\.9 verdict=(\w+)", t.log())
    assert verdicts[0] == "new" and verdicts[-1] in ("early", "passed"), verdicts


def test_greylist_torn_record_is_skipped(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, greylist=GREY))
    assert rcpt_reply(t, "127.0.0.3").startswith("451")
    t.stop()
    path = os.path.join(t.state, "greylist.log")
    with open(path, "ab") as f:
        f.write(b"123 456 1 t:bogus 00000000000000\n12 34 1 t:torn")   # bad checksum, torn
    t.start()
    t.wait_log("skipped=2")
    assert "entries=1 " in t.log()


def test_greylist_bound_crossed_on_the_running_server(make_tern, dns_port):
    """max_entries (16, its least) crossed by clients: the entry changed
    longest ago goes, and the log says so; the newer triplets keep their
    state and pass after the delay; the replay at a restart keeps the
    same bound."""
    t = make_tern(config=conf(dns_port, greylist=dict(GREY, max_entries="16")))
    assert rcpt_reply(t, "127.0.0.3", sender="first@far.test").startswith("451")
    first = time.time()
    for i in range(16):
        assert rcpt_reply(t, "127.0.0.3", sender=f"s{i}@far.test").startswith("451")
    # the 17th entry pushed the first one out
    t.wait_log("event=greylist_store_full ")
    assert re.search(r"event=greylist_store_full path=\S+greylist\.log max_entries=16 evicted=1$", t.log(), re.M), \
        t.log()
    wait_until(lambda: time.time() - first >= AFTER_DELAY)
    # the first triplet is forgotten: after the delay it is new again, not passed
    assert rcpt_reply(t, "127.0.0.3", sender="first@far.test").startswith("451")
    verdicts = re.findall(r'ip=127\.0\.0\.3 verdict=(\w+) action=\w+ from="first@far\.test"', t.log())
    assert verdicts == ["new", "new"], verdicts
    # the newest triplet is still known: its retry passes, and the client too
    assert rcpt_reply(t, "127.0.0.3", sender="s15@far.test").startswith("250")
    assert rcpt_reply(t, "127.0.0.3", sender="other@far.test").startswith("250")
    assert 'verdict=passed action=accept from="s15@far.test"' in t.log()
    t.restart()
    t.wait_log("event=greylist_store_open")
    assert re.search(r"event=greylist_store_open \S+ entries=16 records=\d+ skipped=0 evicted=[1-9]", t.log()), \
        t.log()
    # what was kept is the newest: the client that passed still passes
    assert rcpt_reply(t, "127.0.0.3", sender="later@far.test").startswith("250")
    with open(os.path.join(t.state, "greylist.log")) as f:
        assert len(f.read().splitlines()) == 16, "compacted to the bound at the start"


def test_greylist_exempt_trusted_authenticated_dnswl(make_tern, dns_port):
    t = make_tern(services=("smtp", "submission"),
                  config=conf(dns_port, {"allow": "wl.test"}, GREY, trusted={"trusted_networks": "127.0.0.9/32"}))
    assert rcpt_reply(t, "127.0.0.9").startswith("250")   # trusted
    assert rcpt_reply(t, "127.0.0.8").startswith("250")   # in the allow list
    c = smtplib.SMTP("127.0.0.1", t.port(), local_hostname="client.test", timeout=15,
                     source_address=("127.0.0.3", 0))
    c.starttls(context=ssl._create_unverified_context())
    c.login("alice@example.test", "alicepw")
    c.mail("alice@example.test")
    assert c.rcpt("bob@example.test")[0] == 250            # authenticated
    c.quit()
    assert rcpt_reply(t, "127.0.0.3").startswith("451")   # the control: not exempt
    assert "event=greylist" in t.log()
    assert not re.search(r"event=greylist \S+ ip=127\.0\.0\.[89] ", t.log())


def test_greylist_expiry(make_tern, dns_port):
    # expire's lower bound is 60s: a triplet first seen long ago is
    # written into the store by hand, and is gone after the restart.
    t = make_tern(config=conf(dns_port, greylist={"enabled": "yes", "delay": "1s", "expire": "60s"}))
    assert rcpt_reply(t, "127.0.0.3").startswith("451")
    t.stop()
    path = os.path.join(t.state, "greylist.log")
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1
    # age the record: rewrite its times, and its checksum
    first, last, passed, key, _ = lines[0].split(" ")
    old = int(time.time()) - 120
    body = f"{old} {old} 1 {key}"
    h = 1469598103934665603
    for b in body.encode():
        h = ((h ^ b) * 1099511628211) & (2**64 - 1)
    with open(path, "w") as f:
        f.write(f"{body} {h:016x}\n")
    t.start()
    t.wait_log("event=greylist_store_open")
    assert "entries=0 records=1 skipped=0" in t.log()
    assert rcpt_reply(t, "127.0.0.3").startswith("451"), "the expired pass is forgotten"


# ---- rates ----

def test_connection_rate(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, smtp={"max_connection_rate": "3"}))
    for _ in range(3):
        s = raw(t, "127.0.0.3")
        assert s.greeting.startswith("220"), s.greeting
        s.close()
    s = raw(t, "127.0.0.3")
    assert s.greeting.startswith("421 4.7.0"), s.greeting
    assert raw(t, "127.0.0.4").greeting.startswith("220"), "another address is counted apart"
    t.wait_log("event=rate_limited ")


def test_message_rate(make_tern, dns_port):
    t = make_tern(config=conf(dns_port, smtp={"max_message_rate": "2"}))
    s = raw(t, "127.0.0.3")
    cmd(s, "EHLO client.test")
    for _ in range(2):
        assert cmd(s, "MAIL FROM:<a@far.test>").startswith("250")
        assert cmd(s, "RSET").startswith("250")
    r = cmd(s, "MAIL FROM:<a@far.test>")
    assert r.startswith("451 4.7.0"), r
    s.close()
    # trusted clients are not counted
    t2 = make_tern(config=conf(dns_port, smtp={"max_message_rate": "1"}, trusted={"trusted_networks": "127.0.0.0/8"}))
    s = raw(t2, "127.0.0.3")
    cmd(s, "EHLO client.test")
    for _ in range(3):
        assert cmd(s, "MAIL FROM:<a@far.test>").startswith("250")
        cmd(s, "RSET")


# ---- configuration ----

@pytest.mark.parametrize("line,what", [
    ("zones = bl.test, bad..zone", "[dnsbl] zones"),
    ("zones = bl.test=10.0.0.2", "[dnsbl] zones"),
    ("allow = wl.test=127.0.0", "[dnsbl] allow"),
    ("check_at = helo", "[dnsbl] check_at"),
])
def test_bad_dnsbl_config_is_an_error_with_its_line(tmp_path, line, what):
    p = tmp_path / "tern.conf"
    p.write_text(f"[server]\nstate_dir = {tmp_path}\n[dnsbl]\n{line}\n")
    r = subprocess.run([TERN_BIN, "check-config", "-c", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"tern.conf:4: {what}" in r.stderr, r.stderr


def test_good_dnsbl_config(tmp_path):
    p = tmp_path / "tern.conf"
    p.write_text(f"[server]\nstate_dir = {tmp_path}\n[dnsbl]\nzones = a.test, b.test=127.0.0.2\n"
                 "allow = list.dnswl.test\ncheck_at = rcpt\ntimeout = 2s\n[greylist]\nenabled = yes\n"
                 "delay = 1m\n[smtp]\nmax_connection_rate = 30\nmax_message_rate = 60\n")
    r = subprocess.run([TERN_BIN, "check-config", "-c", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_greylist_records_are_synced_on_the_pool_not_before_the_451(make_tern, dns_port, tmp_path):
    import syscalls
    why = syscalls.strace_usable()
    if why:
        pytest.skip(why)
    t = make_tern(config=conf(dns_port, greylist=GREY))
    trace = str(tmp_path / "strace.out")
    with syscalls.Recorder(t.proc.pid, trace) as rec:
        assert rcpt_reply(t, "127.0.0.3").startswith("451")

        def synced():
            return [e for e in rec.events()
                    if e.name == "fdatasync" and "greylist.log" in e.fd_path()]
        syncs = wait_until(synced, timeout=15)
    events = rec.events()
    appends = [e for e in events if e.name in ("write", "writev") and "greylist.log" in e.fd_path()]
    assert appends, "the first sighting is appended"
    # the sync ran on a worker thread, not on the loop thread that appended
    assert syncs[0].pid != appends[0].pid


def test_too_many_zones_is_an_error(tmp_path):
    p = tmp_path / "tern.conf"
    zones = ", ".join(f"z{i}.test" for i in range(20))
    allow = ", ".join(f"w{i}.test" for i in range(13))
    p.write_text(f"[server]\nstate_dir = {tmp_path}\n[dnsbl]\nzones = {zones}\nallow = {allow}\n")
    r = subprocess.run([TERN_BIN, "check-config", "-c", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "more than 32 zones" in r.stderr, r.stderr


def test_connection_rate_on_the_submission_ports(make_tern, dns_port):
    """max_connection_rate counts the connections to 587 and 465 too (AUTH
    guessing floods them), all ports together; on 465 the 421 comes over
    TLS; trusted networks are not counted."""
    import ssl
    from authutil import client_tls
    t = make_tern(services=("smtp", "submission", "submissions"),
                  config=conf(dns_port, smtp={"max_connection_rate": "3"}))

    def tls_greeting(source):
        c = socket.create_connection(("127.0.0.1", t.port("submissions")), timeout=15,
                                     source_address=(source, 0))
        s = client_tls().wrap_socket(c, server_hostname="mx.test")
        try:
            return s.recv(512).decode()
        finally:
            s.close()

    assert tls_greeting("127.0.0.5").startswith("220")
    assert tls_greeting("127.0.0.5").startswith("220")
    s = raw(t, "127.0.0.5", service="submission")
    assert s.greeting.startswith("220"), s.greeting
    s.close()
    assert tls_greeting("127.0.0.5").startswith("421 4.7.0")
    s = raw(t, "127.0.0.5", service="submission")
    assert s.greeting.startswith("421 4.7.0"), s.greeting
    assert raw(t, "127.0.0.6").greeting.startswith("220"), "another address is counted apart"
    t.wait_log("event=rate_limited ")
    t2 = make_tern(services=("smtp", "submissions"),
                   config=conf(dns_port, smtp={"max_connection_rate": "1"}, trusted={"trusted_networks": "127.0.0.0/8"}))
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", t2.port("submissions")), timeout=15)
        s = client_tls().wrap_socket(c, server_hostname="mx.test")
        assert s.recv(512).decode().startswith("220")
        s.close()


def test_greylisted_rcpt_leaves_no_recipient(make_tern, dns_port):
    """A RCPT refused by greylisting takes its recipient out of the
    envelope again: in a transaction where a later RCPT passes, the
    message reaches only the accepted recipient."""
    t = make_tern(config=conf(dns_port, greylist={"enabled": "yes", "delay": "0s"}))
    assert rcpt_reply(t, "127.0.0.3").startswith("451")       # alice's triplet is seen
    s = raw(t, "127.0.0.3")
    assert cmd(s, "EHLO client.test").startswith("250")
    assert cmd(s, "MAIL FROM:<sender@far.test>").startswith("250")
    assert cmd(s, "RCPT TO:<bob@example.test>").startswith("451 4.7.1")    # new: deferred
    assert cmd(s, "RCPT TO:<alice@example.test>").startswith("250")        # seen: passes
    assert cmd(s, "DATA").startswith("354")
    assert cmd(s, "Subject: grey\r\n\r\nhello\r\n.").startswith("250")
    s.close()
    t.wait_messages("alice@example.test", 1)
    assert t.messages("bob@example.test") == []
    assert t.cli("queue", "list").stdout == ""

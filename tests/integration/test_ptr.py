"""The client's forward-confirmed PTR name in Received: (RFC 5321 4.4),
from a private dnsmasq on loopback ([dns] servers)."""
import os
import re
import smtplib
import time

import pytest

from conftest import DNSMASQ, Dnsmasq


@pytest.fixture
def dns_port():
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq is not installed")
    dns = Dnsmasq([
        # 127.0.0.1 -> client.ptr.test -> 127.0.0.1: confirmed
        "--ptr-record=1.0.0.127.in-addr.arpa,client.ptr.test",
        "--host-record=client.ptr.test,127.0.0.1",
        # 127.0.0.2 -> liar.ptr.test -> 127.0.0.99: not confirmed
        "--ptr-record=2.0.0.127.in-addr.arpa,liar.ptr.test",
        "--host-record=liar.ptr.test,127.0.0.99",
        # 127.0.0.3 -> three names (dnsmasq answers them in the
        # reverse order of these lines: bad1, good, bad2); only
        # the second resolves back to 127.0.0.3
        "--ptr-record=3.0.0.127.in-addr.arpa,bad2.ptr.test",
        "--ptr-record=3.0.0.127.in-addr.arpa,good.ptr.test",
        "--ptr-record=3.0.0.127.in-addr.arpa,bad1.ptr.test",
        "--host-record=good.ptr.test,127.0.0.3",
        "--host-record=bad1.ptr.test,127.0.0.98",
        "--host-record=bad2.ptr.test,127.0.0.97"])
    yield dns.port
    dns.stop()


def send_from(t, source, rcpt="alice@example.test", wait_ptr=True):
    c = smtplib.SMTP("127.0.0.1", t.port(), local_hostname="helo.name.test", timeout=10,
                     source_address=(source, 0))
    if wait_ptr:   # the lookup is asynchronous: let it finish
        sid = session_of(t, source)
        t.wait_log(f"event=ptr session={sid} ")
    c.sendmail("sender@example.test", [rcpt], b"Subject: ptr\r\n\r\nx\r\n")
    c.quit()


def session_of(t, ip):
    """The id of the newest session from ip (the log has no client port:
    callers make one connection at a time from a given address)."""
    ids = re.findall(r"event=connect session=(\w+) service=smtp ip=" + re.escape(ip) + r"\b", t.log())
    assert ids, t.log()[-3000:]
    return ids[-1]


def received(t, addr, n=1):
    m = t.wait_messages(addr, n)[n - 1].decode()
    return m[m.index("Received: "):].split("\n\t", 1)[0]


def test_received_has_confirmed_ptr(make_tern, dns_port):
    t = make_tern(config={"dns": {"servers": f"127.0.0.1:{dns_port}"}})
    send_from(t, "127.0.0.1")
    assert received(t, "alice@example.test") == "Received: from helo.name.test (client.ptr.test [127.0.0.1])"


def test_unconfirmed_ptr_left_out(make_tern, dns_port):
    t = make_tern(config={"dns": {"servers": f"127.0.0.1:{dns_port}"}})
    send_from(t, "127.0.0.2")
    assert received(t, "alice@example.test") == "Received: from helo.name.test ([127.0.0.2])"


def test_several_ptr_names_first_confirmed_wins(make_tern, dns_port):
    t = make_tern(config={"dns": {"servers": f"127.0.0.1:{dns_port}"}})
    send_from(t, "127.0.0.3")
    assert received(t, "alice@example.test") == "Received: from helo.name.test (good.ptr.test [127.0.0.3])"
    assert "name=good.ptr.test" in t.log()


def free_udp_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_answer_does_not_delay(make_tern):
    """A resolver that never answers: Received: goes without the name,
    and the message is accepted without waiting for DNS."""
    silent = free_udp_port()
    t = make_tern(config={"dns": {"servers": f"127.0.0.1:{silent}"}})
    start = time.time()
    send_from(t, "127.0.0.1", wait_ptr=False)
    assert time.time() - start < 4   # a DNS try alone takes 5 s
    assert received(t, "alice@example.test") == "Received: from helo.name.test ([127.0.0.1])"


def test_session_gone_before_answer(make_tern, dns_port):
    """Sessions that end before the answer: the lookup is cancelled."""
    t = make_tern(config={"dns": {"servers": f"127.0.0.1:{dns_port}"}})
    for _ in range(20):
        s = t.connect()
        s.close()
    send_from(t, "127.0.0.1")
    assert "client.ptr.test" in received(t, "alice@example.test")

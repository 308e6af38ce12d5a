"""The control socket is part of start-up: it exists before the server
logs event=start, so a client that waited for that line (as make_tern
does) can use `tern queue` at once."""
import os
import re


def event_order(log):
    return [m.group(1) for m in re.finditer(r" event=(\w+)", log)]


def test_control_socket_is_ready_at_start(make_tern):
    t = make_tern()
    order = event_order(t.log())
    assert "control_listening" in order, t.log()
    assert order.index("control_listening") < order.index("start"), order
    assert max(i for i, e in enumerate(order) if e == "listen") < order.index("start")
    assert os.path.exists(os.path.join(t.state, "run", "control.sock"))
    # Straight after event=start: the control verbs and the local ones.
    r = t.cli("queue", "flush")
    assert r.returncode == 0, r.stderr
    r = t.cli("queue", "list")
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    r = t.cli("queue", "hold", "0123456789abcdef")
    assert "control socket" not in r.stderr, r.stderr


def test_control_socket_ready_after_each_restart(make_tern):
    t = make_tern()
    for n in range(3):
        t.restart()
        r = t.cli("queue", "flush")
        assert r.returncode == 0, (n, r.stderr)
    # Every start logged the socket before itself.
    order = event_order(t.log())
    starts = [i for i, e in enumerate(order) if e == "start"]
    sockets = [i for i, e in enumerate(order) if e == "control_listening"]
    assert len(starts) == len(sockets) == 4
    assert all(s < st for s, st in zip(sockets, starts))

"""Publisher/subscriber over tcp loopback: order, a slow subscriber never stalls the publisher and
sees bounded latency with counted losses, the drain at the end (the end of stream reaches a slow
subscriber; a stuck one is given up on, counted), heartbeats (tail losses counted, a silent
publisher noticed), rate-limited rejections, port checks and the bound address, localhost-only
default."""
import logging
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from streamrecon.errors import UserInputError
from streamrecon.types import Mesh
from streamrecon.transport.publisher import MeshPublisher, is_local
from streamrecon.transport.subscriber import MeshSubscriber
from streamrecon.testing.sphere_model import uv_sphere
from paths import ROOT

CLI = [sys.executable, "-m", "streamrecon.cli"]


def free_addr():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def connected_pair(sndhwm=4, rcvhwm=4, **pub_kw):
    addr = free_addr()
    pub = MeshPublisher(addr, sndhwm=sndhwm, **pub_kw)
    sub = MeshSubscriber(addr, rcvhwm=rcvhwm)
    assert pub.wait_for_subscribers(1, 10)
    time.sleep(0.05)
    return pub, sub


def reader(sub, delay_s=0.0, latest=False):
    """A thread that reads ``sub`` until the end of stream (or silence), ``delay_s`` per mesh, and
    closes it then, as a client should. Returns (thread, meshes read)."""
    seen = []

    def run():
        try:
            while True:
                msg = (sub.recv_latest if latest else sub.recv)(timeout=10)
                if msg is None or msg.header.is_end:
                    return
                seen.append(msg)
                time.sleep(delay_s)
        finally:
            sub.close()

    t = threading.Thread(target=run)
    t.start()
    return t, seen


def test_messages_arrive_in_order_with_content():
    pub, sub = connected_pair(sndhwm=1000, rcvhwm=1000)
    v, f = uv_sphere(8, 16)
    t, msgs = reader(sub)
    try:
        for i in range(20):
            pub.send_mesh(Mesh(v + i, f, frame="image", rect=(i, 0, 10, 10)), frame_index=i, person_id=3, capture_time=time.time())
        assert pub.end(20) == 0
        t.join(10)
    finally:
        pub.close()
        sub.close()
    assert [m.header.frame_index for m in msgs] == list(range(20)) and [m.header.seq for m in msgs] == list(range(20))
    assert sub.ended and sub.missed == 0 and sub.received == 20 and sub.rejected == 0
    for i, m in enumerate(msgs):
        np.testing.assert_array_equal(m.mesh.vertices, v + i)
        assert m.header.person_id == 3 and m.mesh.rect == (i, 0, 10, 10) and m.mesh.frame == "image"


def test_slow_subscriber_never_stalls_publisher_and_latency_stays_bounded():
    n = 120
    pub, sub = connected_pair(sndhwm=2, rcvhwm=2)
    v, f = uv_sphere(100, 200)  # ~20k vertices, ~0.7 MB per message
    mesh = Mesh(v, f)
    t, seen = reader(sub, delay_s=0.1, latest=True)  # a consumer 20x slower than the stream
    send_s = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            pub.send_mesh(mesh, frame_index=i, capture_time=time.time())
            send_s.append(time.perf_counter() - t0)
            time.sleep(0.005)
        pub.end(n)
        t.join(20)
    finally:
        pub.close()
        sub.close()
    assert not t.is_alive() and sub.ended
    # the publisher was never held up by the subscriber (a blocked send would take ~0.1 s)
    assert np.median(send_s) < 0.01 and max(send_s) < 0.08
    # the reader saw increasing frames, far fewer than sent, every loss counted
    frames = [m.header.frame_index for m in seen]
    assert frames == sorted(frames) and len(frames) < n / 3
    assert sub.missed + sub.skipped > n / 2
    assert sub.received + sub.missed == n
    # bounded latency: a few messages in flight, not the whole backlog (~n * 0.1 s = 12 s)
    assert max(sub.latency(m, now=m.header.publish_time) for m in seen) < 1.5


def test_end_of_stream_reaches_a_subscriber_behind_by_its_whole_queue():
    """The publisher ends right after a burst: the subscriber is seconds behind (both high-water
    marks full, kernel buffers full). The drain waits for it: the end of stream arrives, nothing
    queued is dropped, every message is received or counted as missed, none corrupted."""
    n = 40
    pub, sub = connected_pair(sndhwm=2, rcvhwm=2)
    v, f = uv_sphere(100, 200)
    t, seen = reader(sub, delay_s=0.03)
    try:
        for i in range(n):
            pub.send_mesh(Mesh(v + i, f), frame_index=i)
        t0 = time.monotonic()
        dropped = pub.end(n)
        drain_s = time.monotonic() - t0
        t.join(10)
    finally:
        pub.close()
        sub.close()
    assert sub.ended and dropped == 0 and drain_s < pub.drain_s
    assert sub.received + sub.missed == n and sub.rejected == 0 and len(seen) >= 3
    for m in seen:
        np.testing.assert_array_equal(m.mesh.vertices, v + m.header.frame_index)


def test_drain_gives_up_on_a_stuck_subscriber_and_says_how_many_it_dropped(caplog):
    import zmq

    addr = free_addr()
    pub = MeshPublisher(addr, sndhwm=2, drain_s=0.5)
    sub = zmq.Context.instance().socket(zmq.SUB)  # connected, never reads, small kernel buffer
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.RCVBUF, 1 << 16)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(addr)
    v, f = uv_sphere(300, 600)  # ~6 MB a message: more than the kernel buffers hold
    try:
        assert pub.wait_for_subscribers(1, 10)
        for i in range(8):
            pub.send_mesh(Mesh(v, f), frame_index=i)
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="streamrecon.transport.publisher"):
            dropped = pub.end(30)
        took = time.monotonic() - t0
    finally:
        pub.close()
        sub.close(0)
    assert 0.4 < took < 2.0
    assert dropped >= 1 and pub.dropped_at_end == dropped
    assert f"{dropped} message(s) still queued" in caplog.text and "--drain-timeout" in caplog.text


def test_heartbeats_count_losses_at_the_end_and_a_silent_publisher_is_noticed():
    addr = free_addr()
    pub = MeshPublisher(addr, sndhwm=1000, heartbeat_s=0.1)
    sub = MeshSubscriber(addr, rcvhwm=1000, lost_after_s=0.5)
    v, f = uv_sphere(8, 16)
    try:
        assert pub.wait_for_subscribers(1, 10)
        assert sub.recv(timeout=0.3) is None and sub.heartbeats >= 1 and sub.publisher_next_seq == 0
        pub.send_mesh(Mesh(v, f), frame_index=0)
        assert sub.recv(timeout=5).header.seq == 0
        # three meshes this subscriber never gets (as if dropped for it): only a heartbeat can tell
        pub.seq += 3
        time.sleep(0.3)
        assert sub.recv(timeout=0.2) is None
        assert sub.missed == 3 and sub.publisher_next_seq == 4
        pub.close()  # gone without an end of stream
        t0 = time.monotonic()
        assert sub.recv() is None  # no timeout given: returns once the publisher is known gone
        assert 0.3 < time.monotonic() - t0 < 3 and sub.lost and not sub.ended
    finally:
        pub.close()
        sub.close()


def test_rejected_messages_are_logged_once_per_interval_with_a_count(caplog):
    import zmq

    addr = free_addr()
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.bind(addr)
    sub = MeshSubscriber(addr, rcvhwm=1000)
    try:
        time.sleep(0.3)  # the subscription reaches the raw publisher
        with caplog.at_level(logging.WARNING, logger="streamrecon.transport.subscriber"):
            for i in range(200):
                raw.send_multipart([b"streamrecon.mesh", b"SRM1 not a header %d" % i])
            while sub.recv(timeout=0.5) is not None:
                pass
            assert sub.rejected == 200
            sub.close()
    finally:
        raw.close(0)
        sub.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # the first rejection, then the count at close
    assert "rejected 199 more message(s)" in warnings[-1].getMessage()


def test_default_is_localhost_and_remote_bind_warns(caplog):
    assert is_local("tcp://127.0.0.1:5555") and is_local("tcp://localhost:1") and is_local("ipc:///tmp/x")
    assert not is_local("tcp://0.0.0.0:5555") and not is_local("tcp://*:5555") and not is_local("tcp://192.168.1.4:5")
    port = free_addr().rsplit(":", 1)[1]
    with caplog.at_level(logging.WARNING, logger="streamrecon.transport.publisher"):
        pub = MeshPublisher(f"tcp://0.0.0.0:{port}")
        pub.close()
    assert "reachable from other machines" in caplog.text


def test_port_in_use_is_a_user_error():
    pub, sub = connected_pair()
    try:
        with pytest.raises(UserInputError, match="cannot bind"):
            MeshPublisher(pub.endpoint)
    finally:
        pub.close()
        sub.close()


@pytest.mark.parametrize("address, words", [
    ("tcp://127.0.0.1:99999", "port '99999' of 'tcp://127.0.0.1:99999' is out of range: expected 0-65535"),
    ("tcp://127.0.0.1:-1", "is not a number"),
    ("tcp://127.0.0.1:http", "is not a number"),
    ("tcp://127.0.0.1", "no port"),
    ("udp://127.0.0.1:5555", "expected tcp://HOST:PORT"),
])
def test_bad_ports_are_refused_before_binding(address, words):
    with pytest.raises(UserInputError, match=re.escape(words)):
        MeshPublisher(address)
    with pytest.raises(UserInputError, match="--connect"):
        MeshSubscriber(address)
    with pytest.raises(UserInputError, match="--connect: port '0' .* expected 1-65535"):
        MeshSubscriber("tcp://127.0.0.1:0")


def test_port_zero_binds_a_free_port_and_tells_which():
    for address in ("tcp://127.0.0.1:0", "tcp://127.0.0.1:*"):
        with MeshPublisher(address) as pub:
            port = int(pub.endpoint.rsplit(":", 1)[1])
            assert pub.endpoint.startswith("tcp://127.0.0.1:") and 0 < port <= 65535


def test_cli_refuses_an_out_of_range_port_in_one_line(tmp_path):
    for argv in (["run", "synthetic:frames=2", "--model", "synthetic", "--out", str(tmp_path / "o"),
                  "--publish", "tcp://127.0.0.1:99999"],
                 ["live", "synthetic:frames=2", "--model", "synthetic", "--publish", "tcp://127.0.0.1:99999"],
                 ["subscribe", "--connect", "tcp://127.0.0.1:99999", "--out", str(tmp_path / "s")]):
        r = subprocess.run([*CLI, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith("streamrecon: error: --") and "99999" in lines[0] and "out of range" in lines[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_live_on_port_zero_prints_the_port_it_bound(tmp_path):
    r = subprocess.run([*CLI, "live", "synthetic:frames=3,fps=30", "--model", "synthetic", "--publish",
                        "tcp://127.0.0.1:0", "--duration", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("publishing meshes on "))
    port = int(line.rsplit(":", 1)[1])
    assert line.startswith("publishing meshes on tcp://127.0.0.1:") and 0 < port <= 65535


def test_subscribe_says_the_end_was_missed_when_the_publisher_goes_silent(tmp_path):
    addr = free_addr()
    pub = MeshPublisher(addr)
    sub = subprocess.Popen([*CLI, "subscribe", "--connect", addr, "--out", str(tmp_path / "rec")], cwd=ROOT,
                           stderr=subprocess.PIPE, text=True)
    v, f = uv_sphere(8, 16)
    try:
        assert pub.wait_for_subscribers(1, 60)
        time.sleep(0.2)
        for i in range(3):
            pub.send_mesh(Mesh(v, f, frame="image"), frame_index=i)
        time.sleep(0.5)
        pub.close()  # no end of stream: as if the publisher had been killed
        _, err = sub.communicate(timeout=30)
    finally:
        sub.kill()
        pub.close()
    assert sub.returncode == 1, err
    assert "received 3 meshes (the publisher went silent without an end of stream: its end was missed)" in err
    assert len((tmp_path / "rec" / "messages.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("argv, words", [
    (["run", "synthetic:frames=2", "--model", "synthetic", "--out", "{tmp}/o", "--publish", "--drain-timeout", "-1"],
     "--drain-timeout: expected seconds >= 0"),
    (["live", "synthetic:frames=2", "--model", "synthetic", "--drain-timeout", "nan"], "--drain-timeout"),
    (["subscribe", "--out", "{tmp}/s", "--max-messages", "-1"], "--max-messages: expected a count >= 1, got -1"),
    (["subscribe", "--out", "{tmp}/s", "--idle-timeout", "-1"], "--idle-timeout: expected seconds > 0, got -1"),
])
def test_stream_counts_and_durations_are_checked_in_one_line(tmp_path, argv, words):
    r = subprocess.run([*CLI, *[a.replace("{tmp}", str(tmp_path)) for a in argv]], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("streamrecon: error:") and words in lines[0], r.stderr
    assert not list(tmp_path.iterdir())


def test_drain_timeout_reaches_the_publisher():
    from streamrecon.stream.session import SessionConfig, open_session
    from streamrecon.stream.stages import StageConfig
    from streamrecon.transport.publisher import DRAIN_S

    assert SessionConfig(source="x").drain_timeout_s == DRAIN_S == MeshPublisher.__init__.__defaults__[2]
    cfg = SessionConfig(source="synthetic:frames=1", stage=StageConfig(model="synthetic"), publish="tcp://127.0.0.1:0",
                        drain_timeout_s=0.7)
    with open_session(cfg) as session:
        assert session.publisher.drain_s == 0.7


def test_fitted_bodies_travel_on_their_own_topic_and_attach_to_their_mesh():
    """A body message precedes its mesh on ``streamrecon.body``: a subscriber that asks for bodies
    gets each attached to its mesh; one that only subscribes to meshes never sees them."""
    import time

    from streamrecon.errors import ProtocolError
    from streamrecon.transport import wire
    from streamrecon.transport.publisher import MeshPublisher
    from streamrecon.transport.subscriber import MeshSubscriber
    from streamrecon.types import Mesh

    mesh = Mesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]], np.int32))
    body = {"betas": [0.1] * 10, "pose": [[0.0, 0.0, 0.0]] * 18, "scale": 300.0, "mask_inside": None}
    with MeshPublisher("tcp://127.0.0.1:0", drain_s=0.5) as pub:
        with MeshSubscriber(pub.endpoint, bodies=True) as both, MeshSubscriber(pub.endpoint) as plain:
            assert pub.wait_for_subscribers(3, 5.0)  # two topics + one
            time.sleep(0.2)
            pub.send_mesh(mesh, frame_index=7, person_id=2, body=body)
            pub.send_mesh(mesh, frame_index=8, person_id=2)
            a, b = both.recv(5.0), both.recv(5.0)
            assert a.body == body and a.header.frame_index == 7 and b.body is None
            c = plain.recv(5.0)
            assert c.body is None and c.header.frame_index == 7 and plain.rejected == 0
    assert wire.decode_body(wire.encode_body(body, seq=3, frame_index=7, person_id=2))["body"] == body
    for bad in (b"{", b'{"seq": 1, "frame_index": 0, "person_id": 0, "body": {"x": NaN}}', b"x" * (wire.MAX_BODY_BYTES + 1),
                b'{"seq": -1, "frame_index": 0, "person_id": 0, "body": {}}'):
        with pytest.raises(ProtocolError, match="body message"):
            wire.decode_body(bad)

"""Publisher/subscriber over tcp loopback: order, a slow subscriber never stalls the publisher and
sees bounded latency with counted losses, localhost-only default."""
import logging
import threading
import time

import numpy as np
import pytest

from streamrecon.types import Mesh
from streamrecon.transport.publisher import MeshPublisher, is_local
from streamrecon.transport.subscriber import MeshSubscriber
from streamrecon.testing.sphere_model import uv_sphere


def free_addr():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def connected_pair(sndhwm=4, rcvhwm=4):
    addr = free_addr()
    pub = MeshPublisher(addr, sndhwm=sndhwm)
    sub = MeshSubscriber(addr, rcvhwm=rcvhwm)
    assert pub.wait_for_subscribers(1, 10)
    time.sleep(0.05)
    return pub, sub


def test_messages_arrive_in_order_with_content():
    pub, sub = connected_pair(sndhwm=1000, rcvhwm=1000)
    v, f = uv_sphere(8, 16)
    try:
        for i in range(20):
            pub.send_mesh(Mesh(v + i, f, frame="image", rect=(i, 0, 10, 10)), frame_index=i, person_id=3, capture_time=time.time())
        pub.end(20)
        msgs = list(sub)
    finally:
        pub.close()
        sub.close()
    assert [m.header.frame_index for m in msgs] == list(range(20))
    assert sub.ended and sub.missed == 0 and sub.received == 20
    for i, m in enumerate(msgs):
        np.testing.assert_array_equal(m.mesh.vertices, v + i)
        assert m.header.person_id == 3 and m.mesh.rect == (i, 0, 10, 10) and m.mesh.frame == "image"


def test_slow_subscriber_never_stalls_publisher_and_latency_stays_bounded():
    n = 120
    pub, sub = connected_pair(sndhwm=2, rcvhwm=2)
    v, f = uv_sphere(100, 200)  # ~20k vertices, ~0.7 MB per message
    mesh = Mesh(v, f)
    seen, latencies = [], []

    def slow_reader():
        while True:
            msg = sub.recv_latest(timeout=10)
            if msg is None or msg.header.is_end:
                return
            latencies.append(sub.latency(msg))
            seen.append(msg.header.frame_index)
            time.sleep(0.1)  # a consumer 20x slower than the stream

    t = threading.Thread(target=slow_reader)
    t.start()
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
    assert seen == sorted(seen) and len(seen) < n / 3
    assert sub.missed + sub.skipped > n / 2
    assert sub.received + sub.missed == n
    # bounded latency: a few messages in flight, not the whole backlog (~n * 0.1 s = 12 s)
    assert max(latencies) < 1.5


def test_default_is_localhost_and_remote_bind_warns(caplog):
    assert is_local("tcp://127.0.0.1:5555") and is_local("tcp://localhost:1") and is_local("ipc:///tmp/x")
    assert not is_local("tcp://0.0.0.0:5555") and not is_local("tcp://*:5555") and not is_local("tcp://192.168.1.4:5")
    port = free_addr().rsplit(":", 1)[1]
    with caplog.at_level(logging.WARNING, logger="streamrecon.transport.publisher"):
        pub = MeshPublisher(f"tcp://0.0.0.0:{port}")
        pub.close()
    assert "reachable from other machines" in caplog.text


def test_port_in_use_is_a_user_error():
    from streamrecon.errors import UserInputError

    pub, sub = connected_pair()
    try:
        with pytest.raises(UserInputError, match="cannot bind"):
            MeshPublisher(pub.endpoint)
    finally:
        pub.close()
        sub.close()

"""BoundedQueue policies: block loses nothing (back-pressure), latest keeps the newest and counts
drops, close/abort never hang."""
import threading
import time

import pytest

from streamrecon.stream.queues import BoundedQueue, Closed


def test_block_loses_nothing_with_slow_consumer():
    q = BoundedQueue(2, "block")
    n = 200
    got = []

    def consume():
        while True:
            item = q.get()
            if item is None:
                return
            got.append(item)
            if item % 50 == 0:
                time.sleep(0.01)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(n):
        q.put(i)
        assert len(q) <= 2
    q.close(None)
    t.join(5)
    assert got == list(range(n)) and q.dropped == 0


def test_block_put_times_out_when_full():
    q = BoundedQueue(1, "block")
    assert q.put(1)
    t0 = time.monotonic()
    assert q.put(2, timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.04 and len(q) == 1


def test_latest_keeps_newest_and_counts_drops():
    q = BoundedQueue(3, "latest")
    for i in range(10):
        assert q.put(i, timeout=0)  # never waits
    assert q.dropped == 7 and q.put_count == 10
    assert [q.get(), q.get(), q.get()] == [7, 8, 9]


def test_close_delivers_queued_items_then_end_marker():
    q = BoundedQueue(3, "block")
    q.put("a")
    q.put("b")
    q.close("END")
    q.close("OTHER")  # the first end marker wins
    assert [q.get(), q.get(), q.get(), q.get()] == ["a", "b", "END", "END"]
    with pytest.raises(Closed):
        q.put("c")


def test_close_never_blocks_on_full_queue():
    q = BoundedQueue(1, "block")
    q.put(1)
    t0 = time.monotonic()
    q.close("END")
    assert time.monotonic() - t0 < 0.1
    assert q.get() == 1 and q.get() == "END"


def test_abort_wakes_blocked_producer_and_consumer():
    full, empty = BoundedQueue(1, "block"), BoundedQueue(1, "block")
    full.put(0)
    errors = []

    def run(fn):
        try:
            fn()
        except Closed:
            errors.append(fn)

    threads = [threading.Thread(target=run, args=(lambda: full.put(1),)),
               threading.Thread(target=run, args=(empty.get,))]
    for t in threads:
        t.start()
    time.sleep(0.05)
    full.abort()
    empty.abort()
    for t in threads:
        t.join(1)
    assert not any(t.is_alive() for t in threads) and len(errors) == 2


def test_get_timeout_and_bad_arguments():
    q = BoundedQueue(1)
    with pytest.raises(TimeoutError):
        q.get(timeout=0.01)
    with pytest.raises(ValueError, match="policy"):
        BoundedQueue(1, "newest")
    with pytest.raises(ValueError, match="maxsize"):
        BoundedQueue(0)

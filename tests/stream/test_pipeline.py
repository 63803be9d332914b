"""The supervisor: order, end of stream, first failure re-raised, live drops with bounded
latency, shutdown mid-stream with no thread left behind."""
import _thread
import contextlib
import threading
import time

import numpy as np
import pytest
from streaming_helpers import disc_centre_error, sphere_stage

from streamrecon.testing.sources import SyntheticSource
from streamrecon.errors import SourceError
from streamrecon.stream.pipeline import Pipeline, PipelineConfig, StageError
from streamrecon.stream.stats import RunStats
from streamrecon.stream.session import run_session


def our_threads():
    return [t for t in threading.enumerate() if t.name.startswith("streamrecon-")]


@pytest.fixture(autouse=True)
def no_leftover_threads():
    yield
    deadline = time.monotonic() + 2
    while our_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert our_threads() == []


def test_n_frames_in_n_results_in_order():
    size = (80, 60)
    src = SyntheticSource(frames=25, size=size)
    with Pipeline(src, [("recon", sphere_stage())], PipelineConfig(queue_size=2)) as p:
        results = list(p)
    assert [r.frame.index for r in results] == list(range(25))
    assert p.frames_in == 25 and p.dropped == 0 and p.policy == "block"
    for r in results:
        assert len(r.persons) == 1 and r.persons[0].mesh.frame == "image"
        assert disc_centre_error(r.persons[0].mesh, r.frame.index, size) < 2.0


def test_stage_chain_and_bug_reraised_with_stage_and_frame():
    def boom(result):
        if result.frame.index == 3:
            raise ZeroDivisionError("bad luck")
        return result

    src = SyntheticSource(frames=100)
    seen = []
    with pytest.raises(StageError, match=r"stage 'post' failed on frame 3: ZeroDivisionError: bad luck") as ei:
        for r in Pipeline(src, [("recon", sphere_stage()), ("post", boom)]):
            seen.append(r.frame.index)
    assert seen == [0, 1, 2]
    assert isinstance(ei.value.__cause__, ZeroDivisionError)


def test_capture_failure_reraised_as_is_after_delivered_frames():
    class Broken(SyntheticSource):
        def frames(self):
            yield from list(super().frames())[:4]
            raise SourceError("camera unplugged")

    got = []
    with pytest.raises(SourceError, match="camera unplugged"):
        for r in Pipeline(Broken(frames=10), [("recon", sphere_stage())]):
            got.append(r.frame.index)
    assert got == [0, 1, 2, 3]  # block policy: everything read before the failure arrives


def test_live_slow_stage_drops_stale_frames_and_bounds_latency():
    """Camera-like source at 200 fps, reconstruction at ~25 fps: the latest policy drops stale
    frames, so the latency stays near one stage time instead of growing with the backlog."""
    stage_s = 0.04
    src = SyntheticSource(frames=120, size=(64, 64), fps=200, live=True)
    stats = RunStats()
    res = run_session(src, sphere_stage(delay_s=stage_s), PipelineConfig(), stats=stats)
    s = res.summary
    assert s["frames_in"] == 120
    assert s["dropped"] > 60
    assert s["frames_done"] + s["dropped"] == 120
    # queue of 1 + the frame in progress: ~2 stage times (+ generous scheduling slack: shared CI cores)
    assert s["latency_s"]["p95"] < 6 * stage_s + 0.15
    # the block twin on the same input loses nothing but its latency grows with the backlog
    stats_b = RunStats()
    src_b = SyntheticSource(frames=40, size=(64, 64), fps=200, live=True)
    res_b = run_session(src_b, sphere_stage(delay_s=stage_s), PipelineConfig(policy="block", queue_size=64), stats=stats_b)
    assert res_b.summary["dropped"] == 0 and res_b.summary["frames_done"] == 40
    assert max(stats_b.latencies) > 3 * s["latency_s"]["p95"]


def test_break_mid_stream_leaves_no_thread():
    src = SyntheticSource(frames=None, size=(32, 32))  # endless
    p = Pipeline(src, [("recon", sphere_stage())])
    for r in p:
        if r.frame.index == 5:
            break
    p.stop()
    assert not p.left_running


def test_stop_is_bounded_when_a_stage_hangs():
    release = threading.Event()

    def stuck(frame):
        release.wait(10)
        return frame

    p = Pipeline(SyntheticSource(frames=None), [("recon", stuck)], PipelineConfig(join_timeout_s=0.3))
    p.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0
    assert p.left_running == ["streamrecon-recon"]
    release.set()  # let the daemon finish so the fixture sees no thread


@contextlib.contextmanager
def python_sigint_handler():
    """Python's own SIGINT handler for the block, then whatever was there. Started as a
    background job (``.ci/run &``), a process inherits SIGINT ignored, and then a SIGINT or
    ``_thread.interrupt_main`` does nothing at all: that hung a Ctrl-C test once."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_within_two_seconds():
    """A KeyboardInterrupt on the main thread ends the session within 2 s."""
    src = SyntheticSource(frames=None, size=(32, 32), fps=100, live=True)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    with python_sigint_handler():
        timer.start()
        t0 = time.monotonic()
        res = run_session(src, sphere_stage(delay_s=0.01), PipelineConfig())
        elapsed = time.monotonic() - t0
        timer.join()
    assert res.interrupted and res.summary["frames_done"] > 0
    assert elapsed < 0.3 + 2.0


def test_sphere_model_drives_real_reconstruction_when_available():
    """The analytic test model through the octree mesher (streamrecon.recon): the mesh is the disc's sphere."""
    recon = pytest.importorskip("streamrecon.recon", reason="streamrecon.recon not in this build")
    from streamrecon.testing.sources import disc_image
    from streamrecon.testing.sphere_model import SphereModel

    img, (cx, cy, r) = disc_image(0, 96, 96)
    mesh = recon.reconstruct_person(SphereModel(), img, (0, 0, 96, 96), None, recon.ReconConfig(resolution=32))
    c = mesh.vertices.mean(axis=0)
    assert np.allclose(c[:2], [2 * cx / 96 - 1, 1 - 2 * cy / 96], atol=0.05)


def test_graceful_ctrl_c_returns_within_two_seconds_while_a_frame_is_mid_reconstruction():
    """The CLI's Ctrl-C path: the first SIGINT sets the stop event; the session returns within the
    join timeout although the stage is busy for 3 s, and the summary counts what was done."""
    import os
    import signal

    release = threading.Event()
    calls = []
    fast = sphere_stage()

    def slow_after_two(frame):
        calls.append(frame.index)
        if len(calls) > 2:
            release.wait(3)
        return fast(frame)

    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT))
    try:
        with python_sigint_handler():
            timer.start()
            t0 = time.monotonic()
            res = run_session(SyntheticSource(frames=None, size=(32, 32), fps=50, live=True), slow_after_two,
                              PipelineConfig(), graceful_sigint=True)
            elapsed = time.monotonic() - t0
            timer.join()
            restored = signal.getsignal(signal.SIGINT)
    finally:
        release.set()
    assert res.interrupted and res.summary["frames_done"] == 2
    assert elapsed < 0.5 + 2.0
    assert restored is signal.default_int_handler  # the session put back the handler it found


def _split_sphere_stage():
    """A stage split in three like the embedded model's: the 'network' step returns what the
    meshing step needs; each step records the thread it ran on."""
    from streamrecon.stream.stages import FrameReconstructor
    from streamrecon.testing.sphere_model import SphereModel, sphere_reconstruct

    model, ran_on = SphereModel(), {}

    def evaluate(image, crop):
        ran_on["recon"] = threading.current_thread().name
        return image, crop

    def finish(pending):
        ran_on["mesh"] = threading.current_thread().name
        image, crop = pending
        return sphere_reconstruct(model, image, crop.rect, crop.mask)

    return FrameReconstructor(evaluate, finish=finish), ran_on


def test_split_stage_runs_people_network_and_meshing_on_their_own_threads():
    stage, ran_on = _split_sphere_stage()
    assert [name for name, _ in stage.stages()] == ["people", "recon", "mesh"]
    size = (80, 60)
    got = []
    res = run_session(SyntheticSource(frames=12, size=size), stage, PipelineConfig(),
                      on_result=lambda r, lat: got.append(r))
    assert res.summary["frames_done"] == 12 and [r.frame.index for r in got] == list(range(12))
    assert ran_on == {"recon": "streamrecon-recon", "mesh": "streamrecon-mesh"}
    # the same results as the stage called directly on each frame
    direct, _ = _split_sphere_stage()
    for r in got:
        want = direct(r.frame).persons[0].mesh
        np.testing.assert_array_equal(r.persons[0].mesh.vertices, want.vertices)
        assert disc_centre_error(r.persons[0].mesh, r.frame.index, size) < 2.0
        assert {"people_s", "recon_s"} <= set(r.timings)


def test_live_queues_between_stages_hold_one_frame():
    stage, _ = _split_sphere_stage()
    live = Pipeline(SyntheticSource(frames=3, live=True), stage.stages())
    files = Pipeline(SyntheticSource(frames=3), stage.stages())
    assert [q.maxsize for q in live._queues] == [1, 1, 1, PipelineConfig.result_queue_size]
    assert [q.maxsize for q in files._queues] == [4] + [PipelineConfig.result_queue_size] * 3


def test_skipped_frames_pass_the_first_stage_only():
    """A resumed run's done frames (``skip``) are read, seen by the first stage (a tracker's state
    goes on) and dropped there; the other frames come out in order with their own indices."""
    first, second = [], []

    def people(frame):
        first.append(frame.index)
        return frame

    def recon(frame):
        second.append(frame.index)
        return frame

    skip = {0, 1, 2, 5}
    p = Pipeline(SyntheticSource(frames=8), [("people", people), ("recon", recon)], PipelineConfig(policy="block"),
                 skip=skip, replay_skipped=True)
    assert [f.index for f in p] == [3, 4, 6, 7]
    assert first == list(range(8)) and second == [3, 4, 6, 7]
    assert p.frames_in == 4
    first.clear()
    p = Pipeline(SyntheticSource(frames=8), [("people", people), ("recon", recon)], PipelineConfig(policy="block"), skip=skip)
    assert [f.index for f in p] == [3, 4, 6, 7] and first == [3, 4, 6, 7]

"""Counts, sizes and durations given on the command line are checked by the config that owns them
(``PipelineConfig``, ``SessionConfig``, ``StageConfig``) before anything opens: one line, exit 2,
no run folder made."""
import math
import subprocess
import sys

import pytest

from streamrecon.errors import UserInputError
from streamrecon.stream.pipeline import MAX_QUEUE_SIZE, PipelineConfig
from streamrecon.stream.session import SessionConfig
from streamrecon.stream.stages import THREADS_PER_CORE, StageConfig, max_threads, usable_cores
from paths import ROOT  # noqa: E402


@pytest.mark.parametrize("kwargs, flag", [
    (dict(queue_size=-1), "--queue-size"),
    (dict(queue_size=MAX_QUEUE_SIZE + 1), "--queue-size"),
    (dict(queue_size=1.5), "--queue-size"),
    (dict(max_frames=-1), "--max-frames"),
    (dict(max_frames=0), "--max-frames"),
    (dict(max_frames=True), "--max-frames"),
    (dict(policy="drop"), "--policy"),
    (dict(result_queue_size=0), "result_queue_size"),
    (dict(join_timeout_s=math.nan), "join_timeout_s"),
])
def test_pipeline_config_checks_its_counts(kwargs, flag):
    with pytest.raises(UserInputError, match=flag) as ei:
        PipelineConfig(**kwargs)
    assert "\n" not in str(ei.value)


def test_pipeline_config_accepts_the_usual_values():
    for kw in (dict(), dict(queue_size=0), dict(queue_size=MAX_QUEUE_SIZE), dict(max_frames=1), dict(policy="latest")):
        PipelineConfig(**kw)


@pytest.mark.parametrize("kwargs, flag", [
    (dict(publish="tcp://127.0.0.1:5555", wait_subscribers=-1), "--wait-subscribers"),
    (dict(publish="tcp://127.0.0.1:5555", wait_subscribers=1, wait_timeout_s=-1), "--wait-timeout"),
    (dict(wait_timeout_s=0), "--wait-timeout"),
    (dict(wait_timeout_s=math.inf), "--wait-timeout"),
    (dict(duration_s=-1.0), "--duration"),
    (dict(duration_s=math.nan), "--duration"),
    (dict(duration_s=math.inf), "--duration"),
    (dict(out="o", overwrite=True, resume=True), "--overwrite and --resume"),
    (dict(resume=True), "--resume needs --out"),
    (dict(out="o", resume=True, live=True), "--resume continues a file run"),
])
def test_session_config_checks_its_counts(kwargs, flag):
    with pytest.raises(UserInputError, match=flag) as ei:
        SessionConfig(source="synthetic:", **kwargs)
    assert "\n" not in str(ei.value)


def test_threads_bounded_by_the_usable_cores():
    most = max_threads()
    assert most == min(256, THREADS_PER_CORE * usable_cores())
    StageConfig(model="synthetic", threads=most)
    for bad in (most + 1, 1000, -1, True, 2.0):
        with pytest.raises(UserInputError, match=rf"--threads: expected an integer in \[0, {most}\]"):
            StageConfig(model="synthetic", threads=bad)


def cli(*argv):
    return subprocess.run([sys.executable, "-m", "streamrecon.cli", *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("argv, words", [
    (["run", "synthetic:frames=3", "--queue-size", "-1"], "--queue-size"),
    (["run", "synthetic:frames=3", "--max-frames", "-1"], "--max-frames"),
    (["run", "synthetic:frames=3", "--max-frames", "0"], "--max-frames"),
    (["run", "synthetic:frames=3", "--publish", "--wait-subscribers", "-1"], "--wait-subscribers"),
    (["run", "synthetic:frames=3", "--publish", "--wait-subscribers", "1", "--wait-timeout", "-1"], "--wait-timeout"),
    (["run", "synthetic:frames=3", "--threads", "1000"], "--threads"),
    (["live", "synthetic:frames=3", "--duration", "-1"], "--duration"),
])
def test_bad_counts_on_the_command_line_are_one_line_and_make_no_folder(tmp_path, argv, words):
    out = tmp_path / "o"
    r = cli(*argv, "--out", out, "--model", "synthetic")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"streamrecon: error: {words}"), r.stderr
    assert not out.exists()

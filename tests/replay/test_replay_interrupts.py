"""Ctrl-C, a killed replay, a killed worker, two replays on one folder: nothing hangs, nothing finished is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from keras_relu_doctor.replay.train import RESULT_FILE

# Six short runs on two workers: long enough to interrupt, short enough to finish.
GRID = ["--only", "relu-*-d3", "--seeds", "1", "--epochs", "4", "--samples", "40000", "--jobs", "2"]
COMMAND = [sys.executable, "-m", "keras_relu_doctor.cli.main", "replay"]


def _start(logdir: Path) -> subprocess.Popen:
    return subprocess.Popen([*COMMAND, str(logdir), *GRID], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip


def _wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _training(logdir: Path) -> bool:
    return any(logdir.glob("*/train/events.out.tfevents.*"))


def _group_alive(group: int) -> bool:
    """Whether any process of the replay's process group (main and workers) still runs."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


def test_ctrl_c_stops_workers_keeps_finished_runs_and_resumes(tmp_path):
    logdir = tmp_path / "logs"
    first = _start(logdir)
    _wait_for(lambda: _training(logdir))
    second = subprocess.run([*COMMAND, str(logdir), *GRID], capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and f"another replay (PID {first.pid})" in second.stderr
    _wait_for(lambda: any(logdir.glob(f"*/{RESULT_FILE}")))  # one run finished, the others under way
    os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, stderr = first.communicate(timeout=30)
    assert first.returncode == 130, stderr
    assert "interrupted" in stderr and "run the same command again" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    _wait_for(lambda: not _group_alive(first.pid), 10)  # no worker left training
    finished = {path.parent.name for path in logdir.glob(f"*/{RESULT_FILE}")}
    kept = int(stderr.split("interrupted: ")[1].split(" of ")[0])
    assert 1 <= kept == len(finished) < 6  # the message counts the runs that are finished, as they finish
    again = subprocess.run([*COMMAND, str(logdir), *GRID], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    runs = [path for path in logdir.iterdir() if path.is_dir()]
    assert len(runs) == 6 and all((run / RESULT_FILE).is_file() for run in runs)
    counts = {len(list((run / "train").glob("events.out.tfevents.*"))) for run in runs}
    assert counts == {2}  # ReluDoctor's and Keras' TensorBoard's: runs cut short were trained afresh
    assert finished <= {path.parent.name for path in logdir.glob(f"*/{RESULT_FILE}")}


def test_workers_die_with_a_killed_replay(tmp_path):
    logdir = tmp_path / "logs"
    first = _start(logdir)
    _wait_for(lambda: _training(logdir))
    first.kill()
    first.communicate(timeout=30)
    _wait_for(lambda: not _group_alive(first.pid), 15)


def test_a_killed_worker_is_one_line(tmp_path):
    logdir = tmp_path / "logs"
    first = _start(logdir)
    _wait_for(lambda: _training(logdir))
    workers = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == first.pid
               and b"resource_tracker" not in (p / "cmdline").read_bytes()]  # fmt: skip
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 2, stderr
    messages = [line for line in stderr.strip().splitlines() if not line.startswith("replay ")]  # the progress bar
    assert len(messages) == 1 and "a worker process died" in messages[0], stderr
    _wait_for(lambda: not _group_alive(first.pid), 15)


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_an_unwritable_logdir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = subprocess.run([*COMMAND, str(blocker / "logs"), *GRID], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot write" in done.stderr

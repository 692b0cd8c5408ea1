"""``relu-doctor report --watch`` and the live reader under it, on real trainings writing as they are watched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from keras_relu_doctor import tags
from keras_relu_doctor.events import read_logdir
from keras_relu_doctor.events.live import LiveLogdir
from keras_relu_doctor.events.writer import EventWriter

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)

# A network that dies while it trains (SGD at 2.0 on inputs in (-1, 0)), slowed so a watcher sees each epoch.
TRAINING = textwrap.dedent(
    """
    import sys, time
    import numpy as np, keras
    from keras_relu_doctor import ReluDoctor

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(-1, 0, (256, 8)).astype("float32")
    y = x.sum(1, keepdims=True)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(float(sys.argv[2])), "mse")

    class Slow(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.6)

    model.fit(x, y, epochs=5, verbose=0,
              callbacks=[ReluDoctor(sys.argv[1], probe_data=(x[:64], y[:64]), on_dead="ignore"), Slow()])
    """
)


def _series(run) -> dict:
    """Every series of a run as plain numbers, to compare two reads."""
    out = {tag: (s.steps.tolist(), s.values.tolist()) for tag, s in run.scalars.items()}
    out.update({tag: (s.steps.tolist(), s.mean.tolist()) for tag, s in run.histograms.items()})
    out.update({tag: (s.steps.tolist(), s.max_abs_output.tolist()) for tag, s in run.units.items()})
    return out


def test_polls_read_only_new_records_and_end_equal_to_a_fresh_read(tmp_path):
    live = LiveLogdir(tmp_path / "logs")
    assert live.poll() == []  # no logdir yet: nothing, and no error
    writer = EventWriter(tmp_path / "logs" / "train")
    seen = []
    for step in range(4):
        writer.units("dense/units", np.stack([np.ones(4), np.arange(4.0)]), step, METADATA)
        writer.scalar("dense/grad_norm", 0.1 * step, step)
        writer.flush()
        if step == 2:
            # A record half-written when the poll comes: left for the next poll, no warning.
            with open(writer.path, "ab") as stream:
                stream.write(b"\x30\x00\x00\x00\x00\x00\x00\x00")
            assert live.poll() == ["train"]
            reader = live._runs["train"].reader
            records = reader.records
            assert live.poll() == [] and reader.records == records  # nothing new: nothing read
            with open(writer.path, "r+b") as stream:
                stream.truncate(os.path.getsize(writer.path) - 8)
            continue
        assert live.poll() == ["train"]
        seen.append(live.run("train").units["dense"].steps.tolist())
    writer.close()
    live.poll()
    assert seen[-1] == [0, 1, 2, 3]
    run = live.run("train")
    assert run.warnings == () and _series(run) == _series(read_logdir(tmp_path / "logs").runs[0])


def test_a_replaced_file_is_read_again_from_the_start(tmp_path):
    live = LiveLogdir(tmp_path)
    with EventWriter(tmp_path / "train") as writer:
        for step in range(3):
            writer.scalar("loss", float(step), step)
    live.poll()
    with open(writer.path, "wb") as stream:  # replaced by a shorter, different file
        stream.write(b"")
    with EventWriter(tmp_path / "train") as other:
        other.scalar("loss", 9.0, 0)
    assert live.poll() == ["train"]
    assert live.run("train").scalars["loss"].values.tolist() == [9.0]


def test_a_live_logdir_in_s3_is_followed(s3, tmp_path):
    """Uploads by another client (a training elsewhere) show at the next poll: no stale listing is trusted."""
    live = LiveLogdir("s3://logs/live_run")
    writer = EventWriter(tmp_path / "train")
    remote = f"logs/live_run/train/{os.path.basename(writer.path)}"
    for step in range(3):
        writer.scalar("loss", 1.0 / (step + 1), step)
        writer.flush()
        s3.put_file(writer.path, remote)  # the fixture's own client, as another process would upload
        assert live.poll() == ["train"]
        assert live.run("train").scalars["loss"].steps.tolist() == list(range(step + 1))
    writer.close()
    s3.put_file(writer.path, "logs/live_run/other/train/" + os.path.basename(writer.path))
    assert live.poll() == ["other/train"]  # a run that appears later is found too


def test_watch_on_an_unreachable_store_is_one_line(s3):
    done = subprocess.run(
        [sys.executable, "-m", "keras_relu_doctor.cli.main", "report", "s3://no-such-bucket/logs", "--watch"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot watch 's3://no-such-bucket/logs'" in done.stderr and "no-such-bucket" in done.stderr


def _watcher(logdir, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "keras_relu_doctor.cli.main", "report", str(logdir), "--watch", "--interval", "0.2",
         *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _train(logdir, learning_rate: float) -> None:
    subprocess.run([sys.executable, "-c", TRAINING, str(logdir), str(learning_rate)], check=True, timeout=240,
                   capture_output=True)


@pytest.mark.slow
def test_watch_prints_findings_as_a_training_writes_them_and_stops_cleanly(tmp_path):
    watcher = _watcher(tmp_path / "logs")
    try:
        time.sleep(1.0)  # started before the logdir exists
        _train(tmp_path / "logs", 2.0)
        time.sleep(1.0)
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"watching {tmp_path / 'logs'} every 0.2 s")
    appeared = [line for line in lines if " train (step " in line and " + " in line]
    assert any("+ dying_relu [error] hidden: 32 of 32 units dead" in line for line in appeared), out
    # Each finding is said once when it appears, then again only when it changes.
    assert len(appeared) == len({line.split(" + ")[1].split(" [")[0] for line in appeared}), out
    assert any(" ~ exploding_gradients [error]" in line for line in lines), out
    assert sum(" train (step " in line and " new run: " in line for line in lines) == 1, out
    assert lines[-1] == f"stopped watching {tmp_path / 'logs'}: 1 run(s), 1 with problems: train"
    assert "Traceback" not in err


@pytest.mark.slow
def test_watch_with_fail_on_stops_at_the_first_such_finding(tmp_path):
    watcher = _watcher(tmp_path / "logs", "--fail-on", "dying_relu")
    try:
        _train(tmp_path / "logs", 2.0)
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 1, (out, err)
    assert out.splitlines()[-1] == "stopped: found dying_relu (--fail-on)"


def test_watch_refuses_what_it_cannot_print(tmp_path):
    for options, fragment in (
        (("--format", "json"), "--watch prints to the terminal"),
        (("--interval", "0"), "--interval must be a number of seconds above 0"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "keras_relu_doctor.cli.main", "report", str(tmp_path), "--watch", *options],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and fragment in done.stderr, done.stderr

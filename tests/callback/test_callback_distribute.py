"""ReluDoctor under tf.distribute: MirroredStrategy over two logical CPUs, MultiWorkerMirroredStrategy
over two worker processes on loopback ports, each against the same training on one device.

Strategies fix their devices and cluster when TensorFlow starts, so every run is
a process of its own (``strategy_run.py``), bounded in time.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# tf.distribute strategies: TensorFlow's own.
pytestmark = pytest.mark.tensorflow_only

RUNNER = Path(__file__).with_name("strategy_run.py")
TIMEOUT_S = 120
# Float tolerance between a strategy's numbers and one device's: the replicas
# sum their halves of each batch's gradient in another order, so weights drift
# by a few float32 ulps per step (measured: 2.4e-7 at most over every value written).
RTOL, ATOL = 1e-5, 1e-6


def _start(mode: str, log_dir: Path, tf_config: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, str(RUNNER), mode, str(log_dir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _finish(*processes: subprocess.Popen) -> list[str]:
    """Wait for every process (all killed after TIMEOUT_S); each must exit 0. Returns what each printed."""
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, f"{' '.join(process.args[1:])} exited {process.returncode}:\n{output[-4000:]}"
    return outputs


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _weights(folder: Path) -> list[np.ndarray]:
    """The trained weights and optimizer variables."""
    saved = np.load(folder / "weights.npz")
    return [saved[name] for name in saved.files if name.startswith("arr_")]


def _saved(folder: Path, name: str) -> int:
    return int(np.load(folder / "weights.npz")[name])


def _numbers(events) -> dict[str, dict[int, np.ndarray]]:
    """Every numeric value the callback wrote (histogram buckets, scalars, per-unit records), by tag and step."""
    return {
        tag: {step: value for step, value in values}
        for tag, values in events.values.items()
        if values[0][1].dtype.kind == "f"
    }


def _assert_same_numbers(read_events, log_dir: Path, one_device: Path) -> None:
    """The strategy's run wrote the one-device run's tags and steps, the baseline bit for bit, the rest
    within float tolerance."""
    got, expected = _numbers(read_events(str(log_dir))), _numbers(read_events(str(one_device)))
    assert got.keys() == expected.keys()
    for tag, steps in expected.items():
        assert got[tag].keys() == steps.keys(), tag
        if 0 in steps:  # update ratios start at step 1
            assert np.array_equal(got[tag][0], steps[0]), f"{tag} at the baseline"
        for step, value in steps.items():
            np.testing.assert_allclose(got[tag][step], value, rtol=RTOL, atol=ATOL, err_msg=f"{tag} at step {step}")


@pytest.fixture(scope="module")
def one_device(tmp_path_factory) -> Path:
    """The logdir of the same training on one device, without a strategy."""
    log_dir = tmp_path_factory.mktemp("one-device")
    _finish(_start("one-device", log_dir))
    return log_dir


@pytest.mark.slow
def test_mirrored_strategy_logs_the_one_device_numbers_and_leaves_training_alone(one_device, tmp_path, read_events):
    _finish(_start("mirrored", tmp_path))
    for fit in ("outside", "inside"):  # fit called outside strategy.scope(), and within it
        _assert_same_numbers(read_events, tmp_path / fit, one_device)
        # Training with the callback is bit for bit training without it.
        for probed, plain in zip(_weights(tmp_path / fit), _weights(tmp_path / "plain")):
            assert np.array_equal(probed, plain)
    assert _saved(tmp_path / "outside", "replicas") == 2


@pytest.mark.slow
def test_multi_worker_chief_alone_writes_the_one_device_numbers(one_device, tmp_path, read_events):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = [
        _start("worker", tmp_path / f"worker{index}", {"cluster": cluster, "task": {"type": "worker", "index": index}})
        for index in (0, 1)
    ]
    chief_output, other_output = _finish(*workers)
    # Worker 1 wrote no event file, nor made a folder for one.
    assert not glob.glob(str(tmp_path / "worker1" / "**" / "*tfevents*"), recursive=True)
    assert not glob.glob(str(tmp_path / "worker1" / "*" / "train"))
    assert len(glob.glob(str(tmp_path / "worker0" / "*" / "train" / "*tfevents*"))) == 3
    assert f"events in {tmp_path / 'worker0' / 'outside' / 'train'}" in chief_output
    not_written = tmp_path / "worker1" / "outside" / "train"
    assert f"no events from this worker (the chief writes its events in {not_written})" in other_output
    assert _saved(tmp_path / "worker0" / "outside", "replicas") == 2
    for fit in ("outside", "inside"):
        _assert_same_numbers(read_events, tmp_path / "worker0" / fit, one_device)
        for chief, other in zip(_weights(tmp_path / "worker0" / fit), _weights(tmp_path / "worker1" / fit)):
            assert np.array_equal(chief, other)
    # on_dead="stop" stopped both workers after the same (first) step; one that ran on would have
    # waited for the other in the next all-reduce until the timeout.
    for index in (0, 1):
        assert _saved(tmp_path / f"worker{index}" / "stop", "iterations") == 1

"""TensorBoard itself reads and serves what the callback writes, beside Keras' own callback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from keras_relu_doctor import tags


@pytest.fixture(scope="module")
def shared_log_dir(keras_mod, regression_data, tmp_path_factory):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"), keras.layers.Dense(1, name="head")]
    )
    model.compile("adam", "mse")
    log_dir = tmp_path_factory.mktemp("shared")
    model.fit(
        x, y, validation_data=(x[:64], y[:64]), epochs=2, verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(log_dir), histogram_freq=1),
                   ReluDoctor(str(log_dir), probe_data=(x[:64], y[:64]))],
    )
    return log_dir


def test_tensorboard_reader_sees_every_tag_beside_keras_callback(shared_log_dir, read_events):
    events = read_events(str(shared_log_dir))
    assert len(events.files) == 2  # Keras' writer and ours, one folder
    expected = {tags.PROBE_LOSS, tags.KERAS_EPOCH_LOSS}
    for layer, weights in (("hidden", ("kernel", "bias")), ("head", ("kernel", "bias"))):
        expected |= {tags.tag(layer, q) for q in tags.SCALAR_QUANTITIES}
        expected |= {tags.tag(layer, q) for q in (tags.ACTIVATIONS, tags.OUTPUT_GRADIENT, tags.UNIT_ACTIVITY, tags.UNITS)}
        expected |= {tags.gradient_tag(layer, w) for w in weights}
    expected.add(tags.tag("hidden", tags.PREACTIVATIONS))
    assert expected <= set(events.values)
    # The baseline (step 0) and two epochs; no update ratio before any update.
    ratios = {tags.tag(layer, tags.UPDATE_RATIO) for layer in ("hidden", "head")}
    for tag in expected - {tags.KERAS_EPOCH_LOSS} - ratios:
        assert events.steps(tag) == [0, 1, 2], tag
    for tag in ratios:
        assert events.steps(tag) == [1, 2], tag
    # The reader's parser claims our per-layer tags and none of Keras' own.
    keras_tags = {tag for tag in events.values if tag not in expected}
    assert any(tag.endswith("/hidden/kernel/histogram") for tag in keras_tags)
    assert all(tags.parse_tag(tag) is None for tag in keras_tags)
    assert all(tags.parse_tag(tag) for tag in expected if tag.startswith(("hidden/", "head/")))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read().decode("utf-8"))


@pytest.mark.slow
def test_real_tensorboard_serves_our_histograms_over_http(shared_log_dir):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(shared_log_dir), "--host", "127.0.0.1",
         "--port", str(port), "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        # TensorBoard runs on TensorFlow whatever backend trained: a Keras it loads on the way must
        # not load PyTorch after TensorFlow (a CUDA build's triton then crashes the server).
        env={name: value for name, value in os.environ.items() if name != "KERAS_BACKEND"},
    )
    base = f"http://127.0.0.1:{port}/data/plugin/histograms"
    tag = tags.tag("hidden", tags.ACTIVATIONS)
    try:
        deadline, listing = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            try:
                listing = _get_json(f"{base}/tags")
                if tag in listing.get("train", {}):
                    break
            except OSError:
                pass
            if server.poll() is not None:
                pytest.fail(f"tensorboard exited: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        assert tag in listing.get("train", {}), listing
        assert tags.gradient_tag("hidden", "kernel") in listing["train"]
        query = urllib.parse.urlencode({"run": "train", "tag": tag})
        series = _get_json(f"{base}/histograms?{query}")
        assert [step for _, step, _ in series] == [0, 1, 2]
        buckets = np.array(series[-1][2])  # [[left, right, count], ...]
        assert buckets[:, 2].sum() == 64 * 8
    finally:
        server.terminate()
        server.wait(timeout=20)

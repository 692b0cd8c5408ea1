"""Suite-wide settings (quiet TensorFlow, deterministic ops) and the shared keras.applications run."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

PROBE = 16  # probe samples of the MobileNetV2 runs


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``tensorflow_only`` when the suite runs on another Keras backend."""
    backend = os.environ["KERAS_BACKEND"]
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"needs the TensorFlow backend (KERAS_BACKEND={backend})")
    for item in items:
        if "tensorflow_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def keras_mod():
    import keras

    return keras


def positive_regression(n: int = 256, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, features)).astype("float32")
    return x, (x @ np.arange(1, features + 1, dtype="float32"))[:, None]


@pytest.fixture(scope="session")
def regression_data() -> tuple[np.ndarray, np.ndarray]:
    return positive_regression()


@pytest.fixture(scope="session")
def mobilenet_runs(tmp_path_factory):
    """MobileNetV2 (weights=None, 32x32, 10 classes) trained 2 steps without and with ReluDoctor."""
    import keras

    from .callback.conftest import random_draws

    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (32, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 32)
    log_dir = tmp_path_factory.mktemp("mobilenet")

    def train(callbacks):
        keras.utils.set_random_seed(3)
        model = keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(32, 32, 3), classes=10)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=1, batch_size=16, shuffle=True, verbose=0, callbacks=callbacks)
        return model, random_draws(keras)

    from keras_relu_doctor import ReluDoctor

    plain, plain_draws = train([])
    callback = ReluDoctor(str(log_dir), probe_data=(x[:PROBE], y[:PROBE]), on_dead="ignore")
    probed, probed_draws = train([callback])
    return {
        "plain": (plain, plain_draws),
        "probed": (probed, probed_draws),
        "callback": callback,
        "log_dir": log_dir,
        "probe": (x[:PROBE], y[:PROBE]),
    }



@pytest.fixture(scope="session")
def mobilenet_logdir(mobilenet_runs):
    """The logdir ReluDoctor wrote while MobileNetV2 trained (``train`` inside)."""
    return mobilenet_runs["log_dir"]


@pytest.fixture(scope="session")
def s3():
    """A real S3 API on loopback (moto's server, in a process of its own), with bucket ``logs``; yields the fsspec file system.

    ``AWS_ENDPOINT_URL`` points every S3 client of this process (and of the
    processes it starts) at it, with throwaway credentials.
    """
    import socket
    import subprocess
    import sys
    import time

    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Its own process, so that what the server holds never counts as ours.
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto's S3 server did not start on port {port}")
            time.sleep(0.1)
    settings = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("logs")
    try:
        yield fs
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

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

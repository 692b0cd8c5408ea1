"""Logdirs written by the ReluDoctor callback from tiny models, shared by the session."""

from __future__ import annotations

import numpy as np
import pytest

EPOCHS = 4
SAMPLES = 512
# Units of the dead model's layer: these start dead (bias -1e3), KILLED dies at KILL_EPOCH.
DEAD_FROM_START = (0, 3, 5, 6)
KILLED = 7
KILL_EPOCH = 2


def _data(kind: str):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 4)).astype("float32")
    return x, np.sin(x).sum(axis=1, keepdims=True).astype("float32")


def _train(logdir, model, optimizer, *, extra_callbacks=()) -> None:
    import keras

    from keras_relu_doctor import ReluDoctor

    x, y = _data("")
    model.compile(optimizer, "mse")
    callbacks = [
        *extra_callbacks,
        keras.callbacks.TensorBoard(str(logdir)),
        ReluDoctor(str(logdir), probe_data=(x[:256], y[:256]), on_dead="ignore"),
    ]
    model.fit(x, y, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=callbacks)


@pytest.fixture(scope="session")
def callback_logdirs(tmp_path_factory):
    """``{name: logdir}`` for the dead, healthy, sigmoid, exploding and tanh models."""
    pytest.importorskip("tensorflow")
    import keras

    root = tmp_path_factory.mktemp("callback_runs")
    logdirs = {}

    class KillUnit(keras.callbacks.Callback):
        """Pushes one unit's bias far below zero at the end of an epoch, before ReluDoctor measures."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch == KILL_EPOCH:
                layer = self.model.layers[0]
                bias = layer.bias.numpy()
                bias[KILLED] = -1e4
                layer.bias.assign(bias)

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    bias = np.zeros(8, dtype="float32")
    bias[list(DEAD_FROM_START)] = -1e3
    dead = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu", bias_initializer=keras.initializers.Constant(bias)),
        keras.layers.Dense(1),
    ])  # fmt: skip
    logdirs["dead"] = root / "dead"
    _train(logdirs["dead"], dead, keras.optimizers.Adam(1e-3), extra_callbacks=[KillUnit()])

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    healthy = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal"),
        keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal"),
        keras.layers.Dense(1),
    ])  # fmt: skip
    logdirs["healthy"] = root / "healthy"
    _train(logdirs["healthy"], healthy, keras.optimizers.Adam(3e-3))

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    sigmoid = keras.Sequential(
        [keras.Input((4,))] + [keras.layers.Dense(16, activation="sigmoid") for _ in range(10)] + [keras.layers.Dense(1)]
    )
    logdirs["sigmoid"] = root / "sigmoid"
    _train(logdirs["sigmoid"], sigmoid, keras.optimizers.Adam(1e-2))

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    large = keras.initializers.RandomUniform(-1.0, 1.0)
    exploding = keras.Sequential(
        [keras.Input((4,))]
        + [keras.layers.Dense(32, activation="relu", kernel_initializer=large) for _ in range(8)]
        + [keras.layers.Dense(1, kernel_initializer=large)]
    )
    logdirs["exploding"] = root / "exploding"
    _train(logdirs["exploding"], exploding, keras.optimizers.SGD(1e-2))

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    huge = keras.initializers.RandomNormal(stddev=10.0)
    tanh = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(16, activation="tanh", kernel_initializer=huge),
        keras.layers.Dense(16, activation="tanh", kernel_initializer=huge),
        keras.layers.Dense(1),
    ])  # fmt: skip
    logdirs["tanh"] = root / "tanh"
    _train(logdirs["tanh"], tanh, keras.optimizers.Adam(1e-2))
    return logdirs


@pytest.fixture(scope="session")
def dead_model_plan():
    """Which units of the dead model die, and when: (dead from step 0, killed unit, its death step)."""
    return DEAD_FROM_START, KILLED, KILL_EPOCH

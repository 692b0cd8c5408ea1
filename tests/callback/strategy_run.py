"""One training run of the ``tf.distribute`` tests, in a process of its own.

A strategy's devices and cluster are fixed when TensorFlow starts, so each run
gets a fresh process:

    python strategy_run.py one-device LOG_DIR    no strategy
    python strategy_run.py mirrored LOG_DIR      MirroredStrategy over two logical CPUs
    python strategy_run.py worker LOG_DIR        MultiWorkerMirroredStrategy; TF_CONFIG names the cluster

Every fit trains the same tiny model from the same weights on the same data,
with ``ReluDoctor`` logging to its folder, and saves there (``weights.npz``)
the trained weights and optimizer variables, the optimizer's step count
(``iterations``) and the number of replicas that trained (``replicas``). Under a strategy the process
fits several times, each into a folder of ``LOG_DIR`` (:data:`FITS`):
``outside`` calls ``fit`` outside ``strategy.scope()``, ``inside`` within it,
``plain`` trains without the callback, and ``stop`` trains a model whose
hidden layer is dead from the start with ``on_dead="stop"``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

PROBE = 64
EPOCHS = 2
BATCH = 32
UNITS = 16
FITS = {
    "mirrored": {"outside": {}, "inside": {"inside_scope": True}, "plain": {"probed": False}},
    "worker": {"outside": {}, "inside": {"inside_scope": True}, "stop": {"dead": True}},
}


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (128, 4)).astype("float32")
    return x, (x @ np.arange(1, 5, dtype="float32"))[:, None]


def build(keras, *, dead: bool = False) -> object:
    """The model, its weights drawn by numpy: the same in every process and under every strategy.

    A third of the hidden biases (all with ``dead``) are -3, more than any
    input lifts: units dead from the start.
    """
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(UNITS, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    rng = np.random.default_rng(1)
    bias = np.where((np.arange(UNITS) % 3 == 0) | dead, -3.0, 0.1).astype("float32")
    model.set_weights(
        [rng.normal(0.0, 0.5, (4, UNITS)).astype("float32"), bias,
         rng.normal(0.0, 0.5, (UNITS, 1)).astype("float32"), np.zeros(1, "float32")]  # fmt: skip
    )
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def train(
    keras, model, log_dir: str, *, probed: bool = True, dead: bool = False, inside_scope: bool = False
) -> None:
    """Fit (within ``strategy.scope()`` with ``inside_scope``), then save what it trained (``weights.npz``)."""
    import contextlib

    from keras_relu_doctor import ReluDoctor

    x, y = data()
    on_dead = "stop" if dead else "ignore"
    doctor = ReluDoctor(log_dir, probe_data=(x[:PROBE], y[:PROBE]), on_dead=on_dead, verbose=1)
    callbacks = [doctor] if probed else []
    with model.distribute_strategy.scope() if inside_scope else contextlib.nullcontext():
        model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0, callbacks=callbacks)
    os.makedirs(log_dir, exist_ok=True)
    saved = [np.asarray(v) for v in model.weights] + [np.asarray(v) for v in model.optimizer.variables]
    replicas = model.distribute_strategy.num_replicas_in_sync
    np.savez(os.path.join(log_dir, "weights.npz"), *saved, iterations=np.asarray(model.optimizer.iterations), replicas=replicas)


def main(mode: str, log_dir: str) -> None:
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif mode == "worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif mode == "one-device":
        strategy = None
    else:
        raise SystemExit(f"mode must be one-device, mirrored or worker, got {mode!r}")
    import keras

    if strategy is None:
        train(keras, build(keras), log_dir)
        return
    for name, options in FITS[mode].items():
        with strategy.scope():
            model = build(keras, dead=options.get("dead", False))
        if mode == "worker":
            patch_keras_multi_worker_fit(model, strategy)
        train(keras, model, os.path.join(log_dir, name), **options)


def patch_keras_multi_worker_fit(model, strategy) -> None:
    """Build what ``fit`` builds first, on one local batch, as Keras would under any other strategy.

    Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy``
    (keras-team/keras#20585): to build the model it all-reduces the first
    batch, a tuple, which the strategy cannot reduce; and after each step it
    reduces the scalar loss along an axis it does not have. Here every worker
    builds alike (so the variables it creates are created on all), and the
    loss of the logs is averaged over this worker's replicas, as under
    ``MirroredStrategy``; the gradients are all-reduced by the optimizer as
    before, so training is Keras' own.
    """
    from keras.src.backend.tensorflow import trainer

    x, y = data()
    with strategy.scope():
        model._symbolic_build(data_batch=(x[:BATCH], y[:BATCH]))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    trainer._collective_all_reduce_multi_worker = lambda strategy: False


if __name__ == "__main__":
    main(*sys.argv[1:3])

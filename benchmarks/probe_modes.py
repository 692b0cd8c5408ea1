"""What each probe mode sees on a keras.applications network early in training.

Trains ``keras.applications.MobileNetV2(weights=None)`` (32x32 inputs, 10 classes,
random images and labels) for a few epochs with two ReluDoctor callbacks on the same
run, one in ``probe_mode="training"`` (the default: BatchNormalization on batch
statistics) and one in ``"inference"`` (``training=False``: moving statistics). Then,
on the trained weights, it measures the dead share of every ReLU layer with plain Keras
in training mode (BatchNorm on the probe batch, inside a ``keras.StatelessScope``), the
anchor, and prints for each mode: ReLU layers over half dead, the largest difference
from the anchor's dead shares, and the stem (``Conv1``) kernel's gradient norm against
the anchor's.

Usage: python benchmarks/probe_modes.py [--samples 512] [--epochs 2] [--probe 128]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--probe", type=int, default=128)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_relu_doctor import ReluDoctor, read_logdir

    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (args.samples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.samples)
    x_probe, y_probe = x[: args.probe], y[: args.probe]
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    root = tempfile.mkdtemp()
    modes = ("training", "inference")
    callbacks = [
        ReluDoctor(os.path.join(root, mode), probe_data=(x_probe, y_probe), probe_mode=mode, on_dead="ignore")
        for mode in modes
    ]
    started = time.perf_counter()
    model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - started

    relus = [layer.name for layer in model.layers if type(layer).__name__ == "ReLU"]
    outputs = keras.Model(model.input, [model.get_layer(name).output for name in relus])
    with keras.StatelessScope():
        anchor_dead = {
            name: float(np.mean(np.abs(np.asarray(value)).max(axis=(0, 1, 2)) == 0.0))
            for name, value in zip(relus, outputs(x_probe, training=True))
        }
    with tf.GradientTape() as tape, keras.StatelessScope():
        loss = keras.losses.SparseCategoricalCrossentropy()(y_probe, model(x_probe, training=True))
    anchor_grad = float(tf.linalg.global_norm(tape.gradient(loss, [model.get_layer("Conv1").kernel])))

    print(f"MobileNetV2 (weights=None, 32x32, 10 classes): {args.samples} images x {args.epochs} epochs, "
          f"probe {args.probe}; fit with both callbacks {seconds:.1f} s")  # fmt: skip
    print(f"{'measured by':<32}{'ReLU layers >50% dead':>23}{'max |dead - anchor|':>21}{'Conv1 grad norm':>17}")
    print(f"{'plain Keras, training mode':<32}{sum(v > 0.5 for v in anchor_dead.values()):>17} of {len(relus)}"
          f"{0.0:>21.3f}{anchor_grad:>17.3g}")  # fmt: skip
    for mode in modes:
        run = read_logdir(os.path.join(root, mode)).run("train")
        dead = {name: float(run.scalars[f"{name}/dead_fraction"].values[-1]) for name in relus}
        grad = float(run.scalars["Conv1/grad_norm"].values[-1])
        gap = max(abs(dead[name] - anchor_dead[name]) for name in relus)
        print(f"{'ReluDoctor, probe_mode=' + repr(mode):<32}{sum(v > 0.5 for v in dead.values()):>17} of {len(relus)}"
              f"{gap:>21.3f}{grad:>17.3g}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Training-time cost of ReluDoctor against plain fit and Keras' own histogram callback.

The seed experiment's MLP (inputs uniform in (-1, 0), 4 features, 3 Dense
layers of 64, ReLU) is trained with each configuration, interleaved, several
repeats; the script prints each median wall time and its ratio to plain fit,
the anchor measured in the same run. Configurations:

- ``plain``: ``model.fit`` alone.
- ``keras_tb_hist``: ``keras.callbacks.TensorBoard(histogram_freq=1)``.
- ``relu_doctor_epoch``: ``ReluDoctor(update_freq="epoch")``.
- ``relu_doctor_100``: ``ReluDoctor(update_freq=100)``.
- ``relu_doctor_100_eager``: as above, but the probe runs as eager ops instead
  of one compiled function per log (the design option not taken).

Targets (issue): per epoch <= 1.05x plain and below Keras' histogram callback;
every 100 batches <= 1.15x.

Usage: python benchmarks/callback_overhead.py [--samples 40000] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_relu_doctor import ReluDoctor

    class EagerProbeReluDoctor(ReluDoctor):
        """Runs the same probe as eager ops, to price the compiled function."""

        def _log(self, step: int, where: str) -> None:
            x, y, sample_weight = self._probe_batch
            python_probe = self._probe_fn.python_function
            result = {k: np.asarray(v) for k, v in python_probe(x, y, sample_weight, tf.constant(step, tf.int64)).items()}
            self._check(result, where)

    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 0.0, (args.samples, 4)).astype("float32")
    y = (x @ np.array([[0.5], [-1.0], [2.0], [0.25]], dtype="float32") + 1.0).astype("float32")
    x_val, y_val = x[:512], y[:512]

    def build() -> keras.Model:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((4,))]
            + [keras.layers.Dense(64, activation="relu") for _ in range(3)]
            + [keras.layers.Dense(1)]
        )
        model.compile(keras.optimizers.Adam(1e-3), "mse")
        return model

    def callbacks_for(name: str, log_dir: str) -> list[keras.callbacks.Callback]:
        probe = (x_val, y_val)
        return {
            "plain": [],
            "keras_tb_hist": [keras.callbacks.TensorBoard(log_dir, histogram_freq=1)],
            "relu_doctor_epoch": [ReluDoctor(log_dir, probe_data=probe, on_dead="ignore")],
            "relu_doctor_100": [ReluDoctor(log_dir, probe_data=probe, update_freq=100, on_dead="ignore")],
            "relu_doctor_100_eager": [
                EagerProbeReluDoctor(log_dir, probe_data=probe, update_freq=100, on_dead="ignore")
            ],
        }[name]

    names = ["plain", "keras_tb_hist", "relu_doctor_epoch", "relu_doctor_100", "relu_doctor_100_eager"]
    timings: dict[str, list[float]] = {name: [] for name in names}
    build().fit(x[:1024], y[:1024], epochs=1, verbose=0)  # warm TensorFlow up once
    for repeat in range(args.repeats):
        for name in names:
            with tempfile.TemporaryDirectory() as log_dir:
                model = build()
                start = time.perf_counter()
                model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0,
                          callbacks=callbacks_for(name, log_dir))
                timings[name].append(time.perf_counter() - start)
        print(f"repeat {repeat + 1}/{args.repeats}: " + ", ".join(f"{n}={timings[n][-1]:.2f}s" for n in names),
              flush=True)

    steps = args.epochs * -(-args.samples // args.batch_size)
    print(f"\n{args.samples} samples x {args.epochs} epochs = {steps} batches; median of {args.repeats} repeats")
    anchor = statistics.median(timings["plain"])
    print(f"{'configuration':<24}{'median s':>10}{'x plain':>10}")
    for name in names:
        median = statistics.median(timings[name])
        print(f"{name:<24}{median:>10.2f}{median / anchor:>10.3f}")


if __name__ == "__main__":
    main()

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
  of one compiled function per log (the design option not taken; on PyTorch,
  whose probe runs eagerly, the same as ``relu_doctor_100``).
- ``model_access_100``: a callback that only reads ``callback.model`` every 100
  batches: on JAX that copies the trainer's state back into the model (what
  ``update_freq=100`` pays for before measuring anything); free elsewhere.

Targets (issue): per epoch <= 1.05x plain and below Keras' histogram callback;
every 100 batches <= 1.15x.

Usage: python benchmarks/callback_overhead.py [--backend tensorflow|jax|torch] [--samples 140000] [--epochs 3] [--repeats 3]
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
    # The seed experiment's training split: 70% of 200,000 samples.
    parser.add_argument("--samples", type=int, default=140_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None,
                        help="Keras backend (default: KERAS_BACKEND, else tensorflow)")  # fmt: skip
    args = parser.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend  # before keras is imported

    import keras
    import numpy as np

    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor import probe as probe_lib

    def timed(cls: type) -> type:
        """``cls`` with the wall time spent inside its hooks added up in ``spent``."""

        class Timed(cls):
            spent = 0.0

            def _timed(self, hook: str, *args: object) -> None:
                start = time.perf_counter()
                getattr(super(), hook)(*args)
                type(self).spent += time.perf_counter() - start

            def on_train_begin(self, logs=None):
                self._timed("on_train_begin", logs)

            def on_train_batch_end(self, batch, logs=None):
                self._timed("on_train_batch_end", batch, logs)

            def on_epoch_end(self, epoch, logs=None):
                self._timed("on_epoch_end", epoch, logs)

            def on_train_end(self, logs=None):
                self._timed("on_train_end", logs)

        return Timed

    class EagerProbeReluDoctor(ReluDoctor):
        """Runs the same probe as eager ops, to price the compiled function."""

        def _measure(self) -> dict:
            backend = keras.backend.backend()
            if backend == "tensorflow":
                return probe_lib.to_numpy(self._probe.function.python_function(*self._probe_batch))
            if backend == "jax":
                import jax

                probe = self._probe
                with jax.disable_jit():
                    reduced = probe._measure(*probe._state(), probe._zeros, self._probe_batch)
                return probe.values(reduced["outputs"], reduced.get("gradients"), reduced["loss"])
            return super()._measure()  # PyTorch: the probe is eager already

    class ModelAccess(keras.callbacks.Callback):
        """Reads ``self.model`` every 100 batches and nothing else: on JAX, the state copy alone."""

        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % 100 == 0:
                self.model

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

    makers = {
        "plain": lambda log_dir: None,
        "keras_tb_hist": lambda log_dir: timed(keras.callbacks.TensorBoard)(log_dir, histogram_freq=1),
        "relu_doctor_epoch": lambda log_dir: timed(ReluDoctor)(log_dir, probe_data=(x_val, y_val), on_dead="ignore"),
        "relu_doctor_100": lambda log_dir: timed(ReluDoctor)(
            log_dir, probe_data=(x_val, y_val), update_freq=100, on_dead="ignore"
        ),
        "relu_doctor_100_eager": lambda log_dir: timed(EagerProbeReluDoctor)(
            log_dir, probe_data=(x_val, y_val), update_freq=100, on_dead="ignore"
        ),
        "model_access_100": lambda log_dir: timed(ModelAccess)(),
    }

    names = ["plain", "keras_tb_hist", "relu_doctor_epoch", "relu_doctor_100", "relu_doctor_100_eager",
             "model_access_100"]  # fmt: skip
    timings: dict[str, list[float]] = {name: [] for name in names}
    inside: dict[str, list[float]] = {name: [] for name in names}
    build().fit(x[:1024], y[:1024], epochs=1, verbose=0)  # warm the backend up once
    for repeat in range(args.repeats):
        for name in names:
            with tempfile.TemporaryDirectory() as log_dir:
                model = build()
                callback = makers[name](log_dir)
                start = time.perf_counter()
                model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0,
                          callbacks=[callback] if callback else [])
                timings[name].append(time.perf_counter() - start)
                inside[name].append(type(callback).spent if callback else 0.0)
        print(f"repeat {repeat + 1}/{args.repeats}: " + ", ".join(f"{n}={timings[n][-1]:.2f}s" for n in names),
              flush=True)

    steps = args.epochs * -(-args.samples // args.batch_size)
    print(f"\nKeras backend {keras.backend.backend()}: {args.samples} samples x {args.epochs} epochs = {steps} "
          f"batches; median of {args.repeats} repeats")  # fmt: skip
    anchor = statistics.median(timings["plain"])
    print(f"{'configuration':<24}{'median s':>10}{'x plain':>10}{'in callback s':>15}")
    for name in names:
        median = statistics.median(timings[name])
        print(f"{name:<24}{median:>10.2f}{median / anchor:>10.3f}{statistics.median(inside[name]):>15.2f}")


if __name__ == "__main__":
    main()

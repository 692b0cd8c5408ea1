"""What ReluDoctor costs on real networks, against plain fit, Keras' histogram callback and the floor.

For each model (the seed MLP, keras.applications MobileNetV2 and ResNet50 with
weights=None at 32x32 and 10 classes, a small Transformer encoder), each
configuration trains in its own process (so peak memory is its own):

- ``plain``: ``model.fit`` alone, the anchor;
- ``keras_tb``: ``keras.callbacks.TensorBoard(histogram_freq=1)``;
- ``relu_doctor``: ``ReluDoctor`` at its defaults, logging every epoch.

It prints wall time and peak resident memory with their ratios to ``plain``;
then, for ReluDoctor, the set-up (``on_train_begin``: tracing the probe), the
first and the median later log, against two references measured in the same
process: a compiled forward+backward pass of the same probe batch through the
same model (the floor of a log), and the time Keras takes to trace and first
run its own train function (the floor of the set-up). Last, where a log's time
goes: the forward+backward pass, per-unit liveness, histograms (bucketing the
same tensors), and writing the event.

Usage: python benchmarks/real_networks_cost.py [--models mlp,mobilenetv2,resnet50,transformer]
       [--images 5000] [--epochs 2] [--probe-size 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MODELS = ("mlp", "mobilenetv2", "resnet50", "transformer")
CONFIGS = ("plain", "keras_tb", "relu_doctor")


def _data(name: str, images: int):
    import numpy as np

    rng = np.random.default_rng(0)
    if name == "mlp":
        x = rng.uniform(-1.0, 0.0, (images * 28, 4)).astype("float32")  # the seed's sample count per epoch scale
        return x, (x @ np.array([[0.5], [-1.0], [2.0], [0.25]], dtype="float32") + 1.0)
    if name == "transformer":
        return rng.integers(0, 1000, (images, 32)), rng.integers(0, 2, images)
    return rng.uniform(0.0, 1.0, (images, 32, 32, 3)).astype("float32"), rng.integers(0, 10, images)


def _model(name: str):
    import keras

    keras.utils.set_random_seed(0)
    if name == "mlp":
        model = keras.Sequential(
            [keras.Input((4,))] + [keras.layers.Dense(64, activation="relu") for _ in range(3)] + [keras.layers.Dense(1)]
        )
        model.compile(keras.optimizers.Adam(1e-3), "mse")
        return model
    if name == "transformer":
        inputs = keras.Input((32,))
        hidden = keras.layers.Embedding(1000, 64)(inputs)
        for _ in range(2):
            attended = keras.layers.MultiHeadAttention(4, 16)(hidden, hidden)
            hidden = keras.layers.LayerNormalization()(keras.layers.Add()([hidden, attended]))
            forward = keras.layers.Dense(64)(keras.layers.Dense(128, activation="relu")(hidden))
            hidden = keras.layers.LayerNormalization()(keras.layers.Add()([hidden, forward]))
        outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling1D()(hidden))
        model = keras.Model(inputs, outputs)
    else:
        build = {"mobilenetv2": keras.applications.MobileNetV2, "resnet50": keras.applications.ResNet50}[name]
        model = build(weights=None, input_shape=(32, 32, 3), classes=10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def _run_config(name: str, config: str, images: int, epochs: int, probe_size: int) -> dict:
    """One training in this process; returns wall time, peak memory and, for ReluDoctor, its parts."""
    import keras

    from keras_relu_doctor import ReluDoctor

    x, y = _data(name, images)
    batch = 256 if name == "mlp" else 32
    model = _model(name)
    log_dir = tempfile.mkdtemp()
    hooks: dict[str, list[float]] = {}
    callbacks = {
        "plain": [],
        "keras_tb": [_timed(keras.callbacks.TensorBoard, hooks)(log_dir, histogram_freq=1)],
        "relu_doctor": [_timed(ReluDoctor, hooks)(log_dir, probe_data=(x[:512], y[:512]),
                                                 probe_size=probe_size or None, on_dead="ignore")],  # fmt: skip
    }[config]
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0, callbacks=callbacks)
    result = {"seconds": time.perf_counter() - start, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "hooks_s": sum(sum(times) for times in hooks.values())}  # fmt: skip
    if config == "relu_doctor":
        result.update(_parts(model, callbacks[0], hooks))
    return result


def _timed(cls: type, spent: dict[str, list[float]]) -> type:
    """``cls`` with the wall time of each hook it defines (beside ``keras.callbacks.Callback``'s no-ops) in ``spent``."""
    import keras

    def wrap(name: str):
        def hook(self, *args, **kwargs):
            start = time.perf_counter()
            getattr(super(timed, self), name)(*args, **kwargs)
            spent.setdefault(name, []).append(time.perf_counter() - start)

        return hook

    names = [name for name in dir(keras.callbacks.Callback) if name.startswith("on_")]
    own = {name: wrap(name) for name in names if getattr(cls, name) is not getattr(keras.callbacks.Callback, name)}
    timed = type(f"Timed{cls.__name__}", (cls,), own)
    return timed


def _parts(model, callback, hooks: dict[str, list[float]]) -> dict:
    """The set-up and logs against their references, and where a log's time goes."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_relu_doctor import probe as probe_lib
    from keras_relu_doctor.events.writer import EventWriter

    loss_fn = keras.losses.get(model.loss)

    @tf.function(autograph=False)
    def reference(x, y):
        with tf.GradientTape() as tape, keras.StatelessScope():
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    x_t, y_t, _ = callback._probe_batch
    x = x_t.numpy()
    reference(x_t, y_t)  # trace and first run

    # Keras' own set-up: a fresh copy of the model, its train function traced and run once.
    fresh = keras.models.clone_model(model)
    fresh.compile(keras.optimizers.Adam(1e-3), model.loss)
    start = time.perf_counter()
    fresh.fit(x[:32], y_t.numpy()[:32], epochs=1, batch_size=32, verbose=0)
    keras_setup_s = time.perf_counter() - start

    callback.set_model(model)
    callback.on_train_begin()  # a fresh probe on the trained model (set-up timed in training)
    # The reference and a log (as the callback runs it) in turns: this machine's speed
    # changes by half from minute to minute, and a ratio of two medians taken apart carries it.
    reference_s, log_s = _interleaved(
        [lambda: [tf.convert_to_tensor(g).numpy() for g in reference(x_t, y_t)], callback._measure], 9
    )
    result = callback._measure()
    with tempfile.TemporaryDirectory() as folder, EventWriter(folder) as writer:
        write_s = _median(lambda: probe_lib.write_probe(writer, callback._layout, result, 1), 5)
    # Liveness and histograms on tensors of the shapes the probe measured.
    outputs = [tf.random.normal(shape) for shape in _output_shapes(model, callback, x)]
    hist_inputs = outputs * 3  # activations, pre-activations (some), output gradients

    @tf.function(autograph=False)
    def liveness(tensors):
        return [probe_lib.unit_liveness(t, keras.layers.Dense(1), 1e-6)["dead_fraction"] for t in tensors]

    @tf.function(autograph=False)
    def histograms(tensors):
        return probe_lib.histogram_tensors(tensors, 30)

    liveness(outputs)
    histograms(hist_inputs)
    callback.on_train_end()
    return {
        "setup_s": hooks["on_train_begin"][0],
        "log_s": hooks["on_epoch_end"],
        "first_log_s": hooks["on_epoch_end"][0],
        "later_log_s": statistics.median(hooks["on_epoch_end"][1:]) if len(hooks["on_epoch_end"]) > 1 else float("nan"),
        "log_compute_s": log_s,
        "reference_s": reference_s,
        "keras_setup_s": keras_setup_s,
        "liveness_s": _median(lambda: [t.numpy() for t in liveness(outputs)], 3),
        "histograms_s": _median(lambda: histograms(hist_inputs).numpy(), 3),
        "write_s": write_s,
        "layers": len(callback.layer_paths),
        "probe": int(x.shape[0]),
        "values_per_log": int(sum(np.prod(shape) for shape in _output_shapes(model, callback, x))),
    }


def _output_shapes(model, callback, x) -> list[tuple[int, ...]]:
    import keras

    shapes = []
    for path in callback.layer_paths:
        try:
            layer = model.get_layer(path.split("/")[-1])
            shapes.append((len(x), *layer.output.shape[1:]))
        except (ValueError, AttributeError):
            continue
    _ = keras
    return shapes


def _median_run(found: list[dict]) -> dict:
    """The run with the median fit time (its parts come with it)."""
    return sorted(found, key=lambda run: run["seconds"])[len(found) // 2]


def _interleaved(functions: list, repeats: int) -> list[float]:
    """Each function's median time, the functions run in turns ``repeats`` times."""
    samples: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, times in zip(functions, samples):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def _median(function, repeats: int) -> float:
    return _interleaved([function], repeats)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--probe-size", type=int, default=0, help="0: ReluDoctor's default, chosen by the model's cost")
    parser.add_argument("--repeats", type=int, default=1, help="fits per configuration, interleaved; medians shown")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # model:config, run in a child process
    args = parser.parse_args()
    if args.one:
        name, config = args.one.split(":")
        print(json.dumps(_run_config(name, config, args.images, args.epochs, args.probe_size)))
        return
    for name in args.models.split(","):
        runs: dict[str, list[dict]] = {config: [] for config in CONFIGS}
        for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every configuration
            for config in CONFIGS:
                child = subprocess.run(
                    [sys.executable, __file__, "--one", f"{name}:{config}", "--images", str(args.images),
                     "--epochs", str(args.epochs), "--probe-size", str(args.probe_size)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs[config].append(json.loads(child.stdout.strip().splitlines()[-1]))
        results = {config: _median_run(found) for config, found in runs.items()}
        anchor = results["plain"]
        print(f"\n{name}: {args.images} samples x {args.epochs} epochs, probe {results['relu_doctor']['probe']}"
              + (" (the default for this model)" if not args.probe_size else "")
              + f", median of {args.repeats}")  # fmt: skip
        print(f"{'configuration':<14}{'fit s':>9}{'x plain':>9}{'peak MB':>10}{'x plain':>9}")
        for config in CONFIGS:
            r = results[config]
            print(f"{config:<14}{r['seconds']:>9.2f}{r['seconds'] / anchor['seconds']:>9.3f}"
                  f"{r['peak_mb']:>10.0f}{r['peak_mb'] / anchor['peak_mb']:>9.3f}")  # fmt: skip
        parts = results["relu_doctor"]
        for config, who in (("relu_doctor", "ReluDoctor's"), ("keras_tb", "Keras TensorBoard's")):
            inside = results[config]["hooks_s"]
            print(f"time inside {who} hooks {inside:.2f} s: plain fit + that = {1 + inside / anchor['seconds']:.3f}x plain"
                  " (less noisy than two fits' difference)")  # fmt: skip
        print(f"ReluDoctor, {parts['layers']} layers measured, {parts['values_per_log'] / 1e6:.1f} M output values per log")
        print(f"  set-up (trace, baseline log) {parts['setup_s']:8.2f} s   x Keras' own set-up ({parts['keras_setup_s']:.2f} s): "
              f"{parts['setup_s'] / parts['keras_setup_s']:.2f}")  # fmt: skip
        print(f"  first log                    {parts['first_log_s']:8.2f} s")
        print(f"  later log (median)           {parts['later_log_s']:8.2f} s")
        print(f"  a log's compute              {parts['log_compute_s']:8.3f} s   x forward+backward "
              f"({parts['reference_s']:.3f} s): {parts['log_compute_s'] / parts['reference_s']:.2f}")  # fmt: skip
        print(f"  of which, measured apart:    liveness {parts['liveness_s']:.3f} s, histograms "
              f"{parts['histograms_s']:.3f} s, writing {parts['write_s']:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()

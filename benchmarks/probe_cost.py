"""What one ReluDoctor log costs, and how its histogram bucketing compares with tf.summary's.

Part 1 times the callback on the seed MLP (4 features, 3 Dense(64) ReLU layers, a
512-sample probe): set-up (``on_train_begin``: building and tracing the probe,
and its first run, the baseline log), the first log after it, and the median
of later logs.

Part 2 writes the same histograms (``--histograms`` tensors of 512 x 64 values)
inside one ``tf.function`` two ways: TensorBoard's ``tf.summary.histogram`` ops,
and our :func:`keras_relu_doctor.probe.histogram_tensors` with the values written
from Python as one event. It prints each way's tracing time (first call) and the
median per call, and the ratios against ``tf.summary.histogram``, the anchor.

Usage: python benchmarks/probe_cost.py [--histograms 20] [--calls 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _median_ms(function, calls: int) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histograms", type=int, default=20)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor import probe as probe_lib
    from keras_relu_doctor.events.writer import EventWriter, summary_metadata

    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 0.0, (2048, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,))] + [keras.layers.Dense(64, activation="relu") for _ in range(3)] + [keras.layers.Dense(1)]
    )
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, verbose=0)

    with tempfile.TemporaryDirectory() as log_dir:
        callback = ReluDoctor(log_dir, probe_data=(x[:512], y[:512]), on_dead="ignore")
        callback.set_model(model)
        start = time.perf_counter()
        callback.on_train_begin()
        setup = time.perf_counter() - start
        start = time.perf_counter()
        callback.on_epoch_end(0)
        first = time.perf_counter() - start
        epoch = iter(range(1, 10**6))
        per_log = _median_ms(lambda: callback.on_epoch_end(next(epoch)), args.calls)
        callback.on_train_end()
    print("ReluDoctor on the seed MLP (512 probe samples, 4 measured layers)")
    print(f"  set-up (trace, baseline log) {setup:6.3f} s")
    print(f"  first log after it         {first:8.3f} s")
    print(f"  later logs, median         {per_log:8.1f} ms")

    values = [tf.constant(rng.normal(size=(512, 64)), tf.float32) for _ in range(args.histograms)]
    names = [f"layer_{i}/activations" for i in range(args.histograms)]
    with tempfile.TemporaryDirectory() as log_dir:
        summary_writer = tf.summary.create_file_writer(os.path.join(log_dir, "tf_summary"), max_queue=10**5)

        @tf.function(autograph=False)
        def with_tf_summary(step):
            with summary_writer.as_default(step=step):
                for name, tensor in zip(names, values):
                    tf.summary.histogram(name, tensor)
            return tf.constant(0)

        event_writer = EventWriter(os.path.join(log_dir, "ours"))
        bucketing = tf.function(lambda: probe_lib.histogram_tensors(values, 30), autograph=False)
        metadata = summary_metadata("histograms")

        def ours() -> None:
            buckets = bucketing().numpy()
            event_writer.summaries(0, [(name, metadata, b) for name, b in zip(names, buckets)])

        rows = {}
        for label, call in (
            ("tf.summary.histogram", lambda: with_tf_summary(tf.constant(0, tf.int64))),
            ("ours (one pass + Python event)", ours),
        ):
            start = time.perf_counter()
            call()
            rows[label] = (time.perf_counter() - start, _median_ms(call, args.calls))
        event_writer.close()
        summary_writer.close()
    anchor_trace, anchor_call = rows["tf.summary.histogram"]
    print(f"\n{args.histograms} histograms of 512 x 64 values in one tf.function")
    print(f"  {'way':<32}{'first call s':>13}{'x anchor':>10}{'per call ms':>13}{'x anchor':>10}")
    for label, (trace, call_ms) in rows.items():
        print(f"  {label:<32}{trace:>13.3f}{trace / anchor_trace:>10.3f}{call_ms:>13.1f}{call_ms / anchor_call:>10.3f}")


if __name__ == "__main__":
    main()

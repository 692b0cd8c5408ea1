"""How fast ``relu-doctor report`` reads a realistic logdir, against tbparse and TensorBoard.

Writes (once, with ``tf.summary``) a logdir of 50 layers x 400 steps: per layer
and step an activation and a gradient histogram (30 buckets), a per-unit record
(32 units) and two scalars, ~30 MB. Then times whole processes, each started
fresh, on it:

* ours: ``relu-doctor report LOGDIR --format json``;
* tbparse: ``SummaryReader(LOGDIR)`` with its scalars, tensors and histograms;
* TensorBoard: ``EventAccumulator(LOGDIR, size_guidance=0 for all)`` -- nothing
  sampled away -- ``Reload()`` and every series read.

and prints the times, the ratios and each process's peak memory. With
``--big-gb X`` it also links the run into copies until the logdir is X GB and
reports our time and peak memory there (the target is under 200 MB for 1 GB).

    python benchmarks/report_speed.py [--logdir DIR] [--repeat 3] [--big-gb 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

LAYERS, STEPS, UNITS, BUCKETS = 50, 400, 32, 30


def generate(logdir: str) -> None:
    """Write the benchmark logdir with tf.summary (the way the callback writes)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from tensorboard.compat.proto import summary_pb2

    from keras_relu_doctor import tags

    content = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS).to_bytes()
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=tags.PLUGIN_NAME, content=content)
    ).SerializeToString()
    names = [f"block_{index}/dense" for index in range(LAYERS)]
    writer = tf.summary.create_file_writer(os.path.join(logdir, "run", tags.TRAIN_SUBDIR))

    @tf.function
    def write_step(step, outputs, gradients):
        with writer.as_default(step=step):
            for index, name in enumerate(names):
                activations = tf.nn.relu(outputs[index])
                tf.summary.histogram(tags.tag(name, tags.ACTIVATIONS), activations, buckets=BUCKETS)
                tf.summary.histogram(tags.gradient_tag(name, "kernel"), gradients[index], buckets=BUCKETS)
                active = tf.reduce_mean(tf.cast(activations > 0, tf.float32), axis=0)
                record = tf.stack([active, tf.reduce_max(activations, axis=0)])
                tf.summary.write(tags.tag(name, tags.UNITS), record, metadata=metadata)
                tf.summary.scalar(tags.tag(name, tags.DEAD_FRACTION), tf.reduce_mean(tf.cast(active == 0, tf.float32)))
                tf.summary.scalar(tags.tag(name, tags.GRAD_NORM), tf.norm(gradients[index]))
            tf.summary.scalar(tags.KERAS_EPOCH_LOSS, tf.reduce_mean(outputs) ** 2)

    rng = np.random.default_rng(0)
    for step in range(STEPS):
        outputs = rng.normal(size=(LAYERS, 64, UNITS)).astype("float32")
        gradients = rng.normal(scale=1e-3, size=(LAYERS, UNITS, UNITS)).astype("float32")
        write_step(tf.constant(step, tf.int64), outputs, gradients)
    writer.close()


def child(tool: str, logdir: str) -> None:
    """Run one tool in this (fresh) process, then print its peak memory in MB."""
    if tool == "ours":
        from keras_relu_doctor.cli.main import main

        try:
            main(["report", logdir, "--format", "json", "--output", os.devnull])
        except SystemExit as exit:
            if exit.code:
                raise
    elif tool == "tbparse":
        from tbparse import SummaryReader

        reader = SummaryReader(logdir)
        _ = (reader.scalars, reader.tensors, reader.histograms)
    elif tool == "tensorboard":
        from tensorboard.backend.event_processing import event_multiplexer

        multiplexer = event_multiplexer.EventMultiplexer(
            size_guidance={kind: 0 for kind in ("scalars", "histograms", "tensors", "compressedHistograms", "images", "audio")}
        )
        multiplexer.AddRunsFromDirectory(logdir)
        multiplexer.Reload()
        for run, run_tags in multiplexer.Runs().items():
            for tag in run_tags.get("tensors", []):
                multiplexer.Tensors(run, tag)
            for tag in run_tags.get("histograms", []):
                multiplexer.Histograms(run, tag)
            for tag in run_tags.get("scalars", []):
                multiplexer.Scalars(run, tag)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def timed(tool: str, logdir: str) -> tuple[float, float]:
    """Seconds for a whole fresh process running ``tool``, and its peak memory in MB."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", tool, logdir], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, float(done.stdout.strip().splitlines()[-1])


def size_mb(folder: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files) / 2**20


def link_copies(logdir: str, big: str, gigabytes: float) -> None:
    """A logdir of hard links to the benchmark run, as many runs as reach ``gigabytes``."""
    source = os.path.join(logdir, "run", "train")
    run_mb = size_mb(source)
    for index in range(int(gigabytes * 1024 / run_mb) + 1):
        target = os.path.join(big, f"run_{index:03d}", "train")
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(source):
            if not os.path.exists(os.path.join(target, name)):
                os.link(os.path.join(source, name), os.path.join(target, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default="/tmp/relu_doctor_bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-gb", type=float, default=0.0)
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "LOGDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if not os.path.isdir(os.path.join(args.logdir, "run")):
        start = time.perf_counter()
        generate(args.logdir)
        print(f"wrote {args.logdir} in {time.perf_counter() - start:.0f} s")
    print(f"logdir: {LAYERS} layers x {STEPS} steps, {size_mb(args.logdir):.1f} MB")
    results = {}
    for tool in ("ours", "tbparse", "tensorboard"):
        runs = [timed(tool, args.logdir) for _ in range(args.repeat)]
        results[tool] = (statistics.median(t for t, _ in runs), max(m for _, m in runs))
        print(f"{tool:12s} {results[tool][0]:7.2f} s (median of {args.repeat})  peak {results[tool][1]:6.0f} MB")
    ours = results["ours"][0]
    print(f"speed-up: {results['tbparse'][0] / ours:.1f}x vs tbparse, {results['tensorboard'][0] / ours:.1f}x vs EventAccumulator")
    if args.big_gb:
        big = args.logdir.rstrip("/") + f"_{args.big_gb:g}gb"
        link_copies(args.logdir, big, args.big_gb)
        seconds, peak = timed("ours", big)
        print(f"ours on {size_mb(big) / 1024:.2f} GB ({len(os.listdir(big))} runs): {seconds:.1f} s, peak {peak:.0f} MB")


if __name__ == "__main__":
    main()

"""How fast ``relu-doctor report`` reads a realistic logdir, against tbparse and TensorBoard.

Writes (once, with ``tf.summary``) a logdir of 50 layers x 400 steps: per layer
and step an activation and a gradient histogram (30 buckets), a per-unit record
(32 units) and two scalars, ~30 MB. Then times whole processes, each started
fresh, on it:

* ours: ``relu-doctor report LOGDIR`` (the text report; with every core, with
  ``--jobs 1``, and in JSON, which writes every series);
* tbparse: ``SummaryReader(LOGDIR)`` with its scalars, tensors and histograms;
* TensorBoard: ``EventAccumulator(LOGDIR, size_guidance=0 for all)`` -- nothing
  sampled away -- ``Reload()`` and every series read.

and prints the times, the ratios and each process's peak memory (and its
largest worker's). Then it links the run into copies until a logdir is
``--big-gb`` GB (targets: under 15 s and 200 MB for 1 GB), and writes a sweep
of ``--sweep`` small runs, and reads both with every core and with one.

    python benchmarks/report_speed.py [--logdir DIR] [--repeat 3] [--big-gb 1] [--sweep 1000]
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


OURS = {
    "ours": ["--output", os.devnull],  # the text report, every core
    "ours-json": ["--format", "json", "--output", os.devnull],  # every series in JSON (6 MB here)
    "ours-1": ["--output", os.devnull, "--jobs", "1"],  # the text report in one process
}


def peak_mb() -> tuple[float, float]:
    """This process's peak resident memory, and its largest child's (a worker), in MB.

    VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak over.
    """
    with open("/proc/self/status") as status:
        own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return own / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def child(tool: str, logdir: str) -> None:
    """Run one tool in this (fresh) process, then print its peak memory and its largest worker's in MB."""
    if tool in OURS:
        from keras_relu_doctor.cli.main import main

        try:
            main(["report", logdir, *OURS[tool]])
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
    print(*peak_mb())


def timed(tool: str, logdir: str) -> tuple[float, float, float]:
    """Seconds for a whole fresh process running ``tool``, its peak memory and its largest worker's, in MB."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", tool, logdir], capture_output=True, text=True, check=True
    )
    own, worker = map(float, done.stdout.strip().splitlines()[-1].split())
    return time.perf_counter() - start, own, worker


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


def sweep(folder: str, runs: int) -> None:
    """A logdir of ``runs`` small runs (10 layers x 20 steps each, about 60 KB), written without TensorFlow."""
    import numpy as np

    from keras_relu_doctor import tags
    from keras_relu_doctor.events.writer import EventWriter, summary_metadata

    rows = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)
    source = os.path.join(folder, "run_0000", "train")
    rng = np.random.default_rng(0)
    with EventWriter(source) as writer:
        for step in range(20):
            values = []
            for index in range(10):
                outputs = np.maximum(rng.normal(size=(64, UNITS)), 0)
                values.append((tags.tag(f"dense_{index}", tags.UNITS), summary_metadata(tags.PLUGIN_NAME, rows.to_bytes()),
                               np.stack([(outputs > 0).mean(0), outputs.max(0)]).astype(np.float32)))
            writer.summaries(step, values)
            for index in range(10):
                writer.histogram(tags.tag(f"dense_{index}", tags.ACTIVATIONS), rng.normal(size=256), step, bins=BUCKETS)
                writer.scalar(tags.tag(f"dense_{index}", tags.GRAD_NORM), float(rng.random()), step)
            writer.scalar(tags.KERAS_EPOCH_LOSS, 1.0 / (step + 1), step)
    name = os.listdir(source)[0]
    for index in range(1, runs):
        target = os.path.join(folder, f"run_{index:04d}", "train")
        os.makedirs(target, exist_ok=True)
        os.link(os.path.join(source, name), os.path.join(target, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default="/tmp/relu_doctor_bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-gb", type=float, default=1.0, help="also read a logdir of this many GB (0: skip)")
    parser.add_argument("--sweep", type=int, default=1000, help="also read a logdir of this many small runs (0: skip)")
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "LOGDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if not os.path.isdir(os.path.join(args.logdir, "run")):
        start = time.perf_counter()
        generate(args.logdir)
        print(f"wrote {args.logdir} in {time.perf_counter() - start:.0f} s")
    print(f"logdir: {LAYERS} layers x {STEPS} steps, {size_mb(args.logdir):.1f} MB; {os.cpu_count()} cores")
    results = {}
    for tool in ("ours", "ours-1", "ours-json", "tbparse", "tensorboard"):
        runs = [timed(tool, args.logdir) for _ in range(args.repeat)]
        results[tool] = (statistics.median(t for t, _, _ in runs), max(m for _, m, _ in runs), max(w for _, _, w in runs))
        seconds, own, worker = results[tool]
        workers = f", largest worker {worker:4.0f} MB" if worker else ""
        print(f"{tool:12s} {seconds:7.2f} s (median of {args.repeat})  peak {own:5.0f} MB{workers}")
    for tool in ("ours", "ours-1", "ours-json"):
        ours = results[tool][0]
        print(f"{tool:12s} speed-up: {results['tbparse'][0] / ours:5.1f}x vs tbparse, "
              f"{results['tensorboard'][0] / ours:5.1f}x vs EventAccumulator")
    if args.big_gb:
        big = args.logdir.rstrip("/") + f"_{args.big_gb:g}gb"
        link_copies(args.logdir, big, args.big_gb)
        for tool in ("ours", "ours-1"):
            seconds, own, worker = timed(tool, big)
            print(f"{tool:12s} on {size_mb(big) / 1024:.2f} GB ({len(os.listdir(big))} runs): {seconds:5.1f} s,"
                  f" peak {own:.0f} MB, largest worker {worker:.0f} MB")
    if args.sweep:
        folder = args.logdir.rstrip("/") + f"_sweep{args.sweep}"
        if not os.path.isdir(folder):
            sweep(folder, args.sweep)
        for tool in ("ours", "ours-1"):
            seconds, own, worker = timed(tool, folder)
            print(f"{tool:12s} on {args.sweep} runs ({size_mb(folder):.0f} MB): {seconds:5.1f} s, peak {own:.0f} MB,"
                  f" largest worker {worker:.0f} MB")


if __name__ == "__main__":
    main()

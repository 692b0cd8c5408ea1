"""In-graph measurements on the probe batch: one compiled function per run.

:func:`build_probe_function` makes one ``tf.function``: a forward pass that
records every measured layer's output (and the input of its activation), the
gradients of the compiled loss with respect to those outputs and to the
trainable weights, the per-unit liveness, histograms and norms.
:func:`write_probe` then writes the values as one event in TensorBoard's own
formats, with the tags of :mod:`keras_relu_doctor.tags`: building protos in
Python costs well under a millisecond, while ``tf.summary`` ops in the graph
tripled its size and its tracing time.

The forward pass runs inside a ``keras.StatelessScope``: whatever a layer
assigns (BatchNormalization's moving statistics in training mode, a seed
generator's state) is discarded, so measuring changes no state of the model.

Example (inside the callback)::

    entries = walk_layers(model)
    probe, layout = build_probe_function(model, entries, loss_fn, settings, snapshot_weights(entries))
    write_probe(event_writer, layout, to_numpy(probe(x, y, sample_weight)), step)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from keras_relu_doctor import tags
from keras_relu_doctor.probe.layers import LayerEntry
from keras_relu_doctor.tags import REASON_NOT_FLOAT, REASON_NOT_REACHED
from keras_relu_doctor.probe.recording import Record, Trace, recording

DEFAULT_BUCKETS = tags.DEFAULT_BUCKETS
# Values bucketed per histogram at most (edges and totals use them all): a
# bucket's share from 2**15 evenly strided values has a standard error under
# 0.3% (within 1% of the whole tensor's; a test checks), while a conv layer's
# output on a probe of a few hundred images holds millions. Bucketing is the
# largest part of a log on CNNs, so the sample is as small as that allows.
HISTOGRAM_SAMPLE = 2**15
# Probe modes: the network the optimizer trains (normalisation on batch
# statistics, Dropout off), or the deployed one (``model(x, training=False)``).
MODE_TRAINING = tags.PROBE_TRAINING
MODE_INFERENCE = tags.PROBE_INFERENCE
PROBE_MODES = (MODE_TRAINING, MODE_INFERENCE)


@dataclass(frozen=True)
class ProbeSettings:
    """Knobs of the measurement, fixed for a run."""

    tolerance: float
    step_unit: str
    buckets: int = DEFAULT_BUCKETS
    mode: str = MODE_TRAINING

def _dense(values: Any) -> tf.Tensor:
    # Embedding gradients arrive as IndexedSlices.
    return tf.convert_to_tensor(values) if isinstance(values, tf.IndexedSlices) else values


def _nonfinite_count(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(~tf.math.is_finite(tf.cast(_dense(values), tf.float32)), tf.float32))


def _units_last(output: tf.Tensor, layer: keras.layers.Layer) -> tf.Tensor:
    """Output as [samples, positions, units]; units are the channel axis."""
    output = tf.cast(output, tf.float32)
    rank = output.shape.rank
    if rank == 1:
        return tf.reshape(output, [-1, 1, 1])
    if rank and rank > 2 and getattr(layer, "data_format", "channels_last") == "channels_first":
        output = tf.transpose(output, [0, *range(2, rank), 1])
    units = output.shape[-1] if output.shape[-1] is not None else tf.shape(output)[-1]
    return tf.reshape(output, [tf.shape(output)[0], -1, units])


def unit_liveness(output: tf.Tensor, layer: keras.layers.Layer, tolerance: float) -> dict[str, tf.Tensor]:
    """Per-unit active fraction, max |output| and output range, and the layer's dead/near-dead/zero fractions.

    A unit is active on a sample when its |output| exceeds ``tolerance`` at any
    position; dead when its output is exactly 0 on every sample; near-dead when
    it is never active yet not exactly 0 (PReLU/LeakyReLU units at ~1e-7).
    A NaN/Inf output counts as active (infinite): such a unit is broken, not
    dead, and NaN/Inf are counted apart.
    """
    by_unit = _units_last(output, layer)
    magnitude = tf.abs(by_unit)
    magnitude = tf.where(tf.math.is_nan(magnitude), tf.fill(tf.shape(magnitude), np.float32(np.inf)), magnitude)
    per_sample_max = tf.reduce_max(magnitude, axis=1)  # [samples, units]
    finite = tf.math.is_finite(by_unit)
    highest = tf.reduce_max(tf.where(finite, by_unit, -np.inf), axis=[0, 1])
    lowest = tf.reduce_min(tf.where(finite, by_unit, np.inf), axis=[0, 1])
    output_range = tf.where(highest >= lowest, highest - lowest, 0.0)
    active_fraction = tf.reduce_mean(tf.cast(per_sample_max > tolerance, tf.float32), axis=0)
    max_abs = tf.reduce_max(per_sample_max, axis=0)
    dead = tf.cast(max_abs == 0.0, tf.float32)
    near_dead = tf.cast((max_abs > 0.0) & (max_abs <= tolerance), tf.float32)
    return {
        "active_fraction": active_fraction,
        "max_abs": max_abs,
        "output_range": output_range,
        "dead_fraction": tf.reduce_mean(dead),
        "near_dead_fraction": tf.reduce_mean(near_dead),
        "zero_fraction": tf.reduce_mean(tf.cast(by_unit == 0.0, tf.float32)),
    }


def _sampled(flat: tf.Tensor, sample_size: int) -> tf.Tensor:
    """An evenly strided sample of at most ``sample_size`` values (every value of a smaller tensor)."""
    length = flat.shape[0]
    if length is not None:
        return flat[:: -(-length // sample_size)] if length > sample_size else flat
    total = tf.shape(flat, out_type=tf.int64)[0]
    stride = tf.maximum(tf.cast(1, tf.int64), -(-total // sample_size))
    return tf.strided_slice(flat, [0], [total], [stride])


def _by_size(tensors: list[tf.Tensor]) -> dict[object, list[int]]:
    """Positions of ``tensors`` grouped by static length; a dynamic length stands alone."""
    groups: dict[object, list[int]] = {}
    for position, tensor in enumerate(tensors):
        key = (tensor.shape[0], tensor.dtype) if tensor.shape[0] is not None else ("dynamic", position)
        groups.setdefault(key, []).append(position)
    return groups


def _restore_order(parts: list[tf.Tensor], order: list[int]) -> tf.Tensor:
    return tf.gather(tf.concat(parts, 0), tf.constant(np.argsort(order), tf.int32))


def histogram_tensors(values: list[tf.Tensor], buckets: int, sample_size: int = HISTOGRAM_SAMPLE) -> tf.Tensor:
    """TensorBoard histogram tensors ``[len(values), buckets, (left, right, count)]``.

    Same layout and edge rules as ``tensorboard.plugins.histogram.summary_v2``
    (empty input: all zeros; one distinct value: zero-width buckets with the
    count in the last; edges ``linspace(min, max)``; float64 bucketing), with
    NaN/Inf left out. Edges and the total count come from every value; a tensor
    of more than ``sample_size`` values is bucketed on an evenly strided sample
    of that size and the counts scaled to the total, so a bucket's share is an
    estimate (within 1% of the whole; a test compares). Built without
    ``tf.cond`` (TensorBoard's version costs ~0.15 s of tracing per
    histogram), and with ops per group of tensors of one size rather than per
    tensor: the tensors (then the samples) of one size are the rows of a
    matrix, and one ``bincount`` counts every histogram, NaN/Inf going to an
    overflow bin per histogram that is dropped.
    """
    bins = buckets + 1  # the last bin of each histogram collects NaN/Inf
    flats = [tf.reshape(_dense(value), [-1]) for value in values]
    order, lows, highs, sizes = [], [], [], []
    for members in _by_size(flats).values():
        matrix = tf.stack([flats[m] for m in members])  # every value: exact edges and totals
        finite = tf.math.is_finite(matrix)
        size = tf.reduce_sum(tf.cast(finite, tf.float64), axis=1)
        low = tf.cast(tf.reduce_min(tf.where(finite, matrix, tf.cast(np.inf, matrix.dtype)), axis=1), tf.float64)
        high = tf.cast(tf.reduce_max(tf.where(finite, matrix, tf.cast(-np.inf, matrix.dtype)), axis=1), tf.float64)
        empty = tf.equal(size, 0.0)
        lows.append(tf.where(empty, tf.zeros_like(low), low))
        highs.append(tf.where(empty, tf.zeros_like(high), high))
        sizes.append(size)
        order += members
    low, high, size = (_restore_order(parts, order) for parts in (lows, highs, sizes))
    samples = [_sampled(flat, sample_size) for flat in flats]
    order, indices, counted = [], [], []
    for members in _by_size(samples).values():
        matrix = tf.cast(tf.stack([samples[m] for m in members]), tf.float64)
        finite = tf.math.is_finite(matrix)
        row_low, row_high = tf.gather(low, members), tf.gather(high, members)
        spread = row_high - row_low
        width = tf.where(tf.equal(spread, 0.0), tf.ones_like(spread), spread / buckets)
        index = tf.cast(tf.floor((matrix - row_low[:, None]) / width[:, None]), tf.int32)
        index = tf.where(finite, tf.clip_by_value(index, 0, buckets - 1), buckets)
        offsets = tf.constant([[m * bins] for m in members], tf.int32)
        indices.append(tf.reshape(index + offsets, [-1]))
        counted.append(tf.reduce_sum(tf.cast(finite, tf.float64), axis=1))
        order += members
    counted = _restore_order(counted, order)
    count = len(values)
    spread = high - low
    binned = tf.math.bincount(tf.concat(indices, 0), minlength=count * bins, maxlength=count * bins, dtype=tf.float64)
    scale = tf.where(counted > 0, size / tf.maximum(counted, 1.0), tf.zeros_like(size))
    spread_counts = tf.reshape(binned, [count, bins])[:, :buckets] * scale[:, None]
    single_counts = tf.one_hot(buckets - 1, buckets, dtype=tf.float64)[None, :] * size[:, None]
    counts = tf.where(tf.equal(spread, 0.0)[:, None], single_counts, spread_counts)
    fractions = tf.range(buckets, dtype=tf.float64) / buckets
    left = low[:, None] + spread[:, None] * fractions[None, :]
    right = tf.concat([left[:, 1:], high[:, None]], axis=1)
    return tf.stack([left, right, counts], axis=2)


def _global_norm(tensors: list[tf.Tensor]) -> tf.Tensor:
    squares = []
    for tensor in tensors:
        values = tf.cast(_dense(tensor), tf.float32)
        squares.append(tf.reduce_sum(tf.where(tf.math.is_finite(values), tf.square(values), 0.0)))
    return tf.sqrt(tf.add_n(squares)) if squares else tf.constant(0.0)


@dataclass
class ProbeLayout:
    """Which tag each value the probe returns belongs to; filled when the probe is traced.

    ``reached`` lists the measured layers whose output the forward pass
    reached; ``not_measured`` gives, for every other layer, the reason.
    ``inputs`` and ``order`` are the layer graph as the forward pass ran it
    (a layer's producers, ``<input>`` for the model's inputs), ``outputs``
    the layers whose tensors the model returns. ``metadata`` is each layer's
    per-unit record metadata, which the callback may refine before the first
    write (a rectifier recognised from its output).
    """

    reached: list[str] = field(default_factory=list)
    not_measured: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    output_units: list[int | None] = field(default_factory=list)
    histogram_tags: list[str] = field(default_factory=list)
    scalar_tags: list[str] = field(default_factory=list)
    unit_tags: list[tuple[str, str]] = field(default_factory=list)  # (tag, layer path)
    metadata: dict[str, tags.UnitsMetadata] = field(default_factory=dict)
    gradients: bool = True


@dataclass
class _Collected:
    """What one trace of the probe measures, in writing order."""

    histograms: list[tuple[str, tf.Tensor]] = field(default_factory=list)
    scalars: list[tuple[str, tf.Tensor]] = field(default_factory=list)
    units: list[tuple[str, str, tf.Tensor]] = field(default_factory=list)

    def scalar(self, tag: str, value: tf.Tensor) -> None:
        self.scalars.append((tag, tf.cast(value, tf.float32)))


def _not_measured_reason(record: Record) -> str:
    return REASON_NOT_FLOAT if record.called and not record.float_output else REASON_NOT_REACHED


def build_probe_function(
    model: keras.Model,
    entries: list[LayerEntry],
    loss_fn: Callable[..., tf.Tensor] | None,
    settings: ProbeSettings,
    previous_weights: dict[str, list[tf.Variable]],
) -> tuple[Callable[..., dict[str, Any]], ProbeLayout]:
    """One compiled function: forward, gradients, liveness, histograms, norms.

    ``entries`` are all the model's layers (:func:`walk_layers`); those marked
    measured are measured, the others only traced for the layer graph. With
    ``loss_fn`` None no gradient is computed or written (``layout.gradients``
    is False). The function returns ``histograms`` (``[m, buckets, 3]``),
    ``scalars`` (``[s]``) and ``units`` (one ``[2, units]`` per layer), laid
    out as the :class:`ProbeLayout` returned beside it says, for
    :func:`write_probe`; and, for the live checks, ``dead_fraction`` and
    ``nonfinite`` (one value per measured layer, in ``entries`` order),
    ``measured`` (1.0 where a layer's output was reached) and ``loss``.
    """
    layout = ProbeLayout(gradients=loss_fn is not None)
    measured_entries = [entry for entry in entries if entry.measured]
    layout.metadata.update(
        {
            entry.path: tags.UnitsMetadata(
                tolerance=settings.tolerance,
                step_unit=settings.step_unit,
                activation=entry.activation.name,
                activation_source=entry.activation.source,
                layer_class=entry.layer_class,
                probe_mode=settings.mode,
            )
            for entry in measured_entries
        }
    )
    batch_statistics = settings.mode == MODE_TRAINING

    # autograph=False: the body branches on Python values only, and converting
    # every Keras call it traces costs seconds.
    @tf.function(reduce_retracing=True, autograph=False)
    def probe(x: Any, y: Any, sample_weight: Any) -> dict[str, Any]:
        with tf.GradientTape() as tape, keras.StatelessScope():
            with recording(entries, tape, batch_statistics=batch_statistics) as trace:
                y_pred = model(x, training=False)
            loss = loss_fn(y, y_pred, sample_weight) if loss_fn is not None else tf.constant(0.0)
        _fill_graph(layout, entries, trace, y_pred)
        records = trace.records
        weight_sources = [_tf_variable(v) for e in measured_entries for _, v in e.weights]
        output_sources = [records[e.path].output for e in measured_entries if records[e.path].output is not None]
        gradients: list[Any] = [None] * (len(weight_sources) + len(output_sources))
        if loss_fn is not None and gradients:
            gradients = tape.gradient(
                loss, weight_sources + output_sources, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
        weight_grads = iter(gradients[: len(weight_sources)])
        output_grads = iter(gradients[len(weight_sources) :])

        collected = _Collected()
        if loss_fn is not None:
            collected.scalar(tags.PROBE_LOSS, loss)
        dead_fractions, nonfinite, measured = [], [], []
        for entry in measured_entries:
            record = records[entry.path]
            grads = [next(weight_grads) for _ in entry.weights]
            if record.output is None:
                dead_fractions.append(tf.constant(0.0))
                nonfinite.append(tf.constant(0.0))
                measured.append(tf.constant(0.0))
                continue
            dead, bad = _measure_layer(
                entry, record, grads, next(output_grads),
                previous_weights.get(entry.path, []), settings, collected,
            )
            dead_fractions.append(dead)
            nonfinite.append(bad)
            measured.append(tf.constant(1.0))
        layout.histogram_tags[:] = [tag for tag, _ in collected.histograms]
        layout.scalar_tags[:] = [tag for tag, _ in collected.scalars]
        layout.unit_tags[:] = [(tag, path) for tag, path, _ in collected.units]
        histograms = (
            histogram_tensors([values for _, values in collected.histograms], settings.buckets)
            if collected.histograms
            else tf.zeros([0, settings.buckets, 3], tf.float64)
        )
        return {
            "histograms": histograms,
            "scalars": tf.stack([value for _, value in collected.scalars]) if collected.scalars else tf.zeros([0]),
            "units": tuple(record for _, _, record in collected.units),
            "dead_fraction": tf.stack(dead_fractions) if dead_fractions else tf.zeros([0]),
            "nonfinite": tf.stack(nonfinite) if nonfinite else tf.zeros([0]),
            "measured": tf.stack(measured) if measured else tf.zeros([0]),
            "loss": tf.cast(loss, tf.float32),
        }

    return probe, layout


def _tf_variable(variable: Any) -> Any:
    """The ``tf.Variable`` behind a Keras variable: TensorFlow's tape cannot zero-fill an
    unconnected Keras variable (its dtype is a string)."""
    value = getattr(variable, "value", variable)
    return value if isinstance(value, tf.Variable) else variable


@contextlib.contextmanager
def without_graph_rewrites() -> Iterator[None]:
    """Run TensorFlow functions called inside this block without its graph optimiser (grappler).

    The probe's graph (forward, backward and every layer's measurements) costs
    grappler longer to rewrite than it saves: on MobileNetV2 the first log took
    13.9 s with it and 5.0 s without, and later logs the same ~0.4 s.
    TensorFlow instantiates a function for the options of the call, so every
    probe call runs inside this block. Only this thread's call options change
    (``context.function_call_options``): TensorFlow's global switch,
    ``tf.config.optimizer.set_experimental_options``, would also make Keras
    rewrite its own train function again after each log.
    """
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    eager = context.context()
    previous = eager.function_call_options
    config = config_pb2.ConfigProto()
    config.ParseFromString(previous.config_proto_serialized)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    eager.function_call_options = context.FunctionCallOptions(
        executor_type=previous.executor_type, config_proto=config
    )
    try:
        yield
    finally:
        eager.function_call_options = previous


def probe_size_for(model: keras.Model, entries: list[LayerEntry], x: Any, *, budget: int, smallest: int, largest: int) -> int:
    """How many probe samples keep one log near ``budget`` output values, within [smallest, largest].

    Counts the measured layers' output values for one sample by running it
    through the model (eagerly, nothing kept); rounds down to a multiple of 8.
    """
    one = keras.tree.map_structure(lambda tensor: tensor[:1], x)
    with tf.GradientTape() as tape, keras.StatelessScope():
        with recording(entries, tape, batch_statistics=False) as trace:
            model(one, training=False)
    per_sample = sum(
        int(np.prod(record.output.shape[1:])) for record in trace.records.values() if record.output is not None
    )
    fits = budget // max(per_sample, 1)
    return int(min(largest, max(smallest, fits // 8 * 8)))


def _fill_graph(layout: ProbeLayout, entries: list[LayerEntry], trace: Trace, y_pred: Any) -> None:
    """Copy what the trace saw into the layout (plain Python values, kept after tracing)."""
    records = trace.records
    layout.reached[:] = [e.path for e in entries if e.measured and records[e.path].output is not None]
    layout.not_measured.clear()
    for entry in entries:
        if entry.measured and records[entry.path].output is None:
            layout.not_measured[entry.path] = _not_measured_reason(records[entry.path])
        elif not entry.measured:
            layout.not_measured[entry.path] = entry.reason
    layout.inputs.clear()
    layout.inputs.update(trace.inputs)
    layout.order[:] = list(trace.order)
    heads = [(trace.producers(tensor), tensor) for tensor in keras.tree.flatten(y_pred)]
    layout.outputs[:] = [producers[0] if producers else "" for producers, _ in heads]
    layout.output_units[:] = [
        int(tensor.shape[-1]) if tensor.shape.rank and tensor.shape[-1] is not None else None for _, tensor in heads
    ]


def _measure_layer(
    entry: LayerEntry,
    record: Record,
    weight_grads: list[tf.Tensor | None],
    output_grad: tf.Tensor | None,
    previous: list[tf.Variable],
    settings: ProbeSettings,
    collected: _Collected,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Add one layer's histograms, scalars and unit record to ``collected``.

    Gradients are None when the model has no loss to differentiate: then no
    gradient value is written at all (not zeros). Returns (dead fraction,
    NaN/Inf count) for the live checks.
    """
    path = entry.path
    output = record.output
    liveness = unit_liveness(output, entry.layer, settings.tolerance)
    nonfinite_activations = _nonfinite_count(output)
    has_gradients = output_grad is not None
    all_grads = [g for g in [*weight_grads, output_grad] if g is not None]
    nonfinite_gradients = tf.add_n([_nonfinite_count(g) for g in all_grads]) if all_grads else tf.constant(0.0)

    histograms = collected.histograms
    histograms.append((tags.tag(path, tags.ACTIVATIONS), output))
    if record.preactivation is not None and not record.preactivation_is_measured:
        histograms.append((tags.tag(path, tags.PREACTIVATIONS), record.preactivation))
    if has_gradients:
        for (name, _), grad in zip(entry.weights, weight_grads):
            histograms.append((tags.gradient_tag(path, name), grad))
        histograms.append((tags.tag(path, tags.OUTPUT_GRADIENT), output_grad))
    histograms.append((tags.tag(path, tags.UNIT_ACTIVITY), liveness["active_fraction"]))
    collected.units.append(
        (
            tags.tag(path, tags.UNITS),
            path,
            tf.stack([liveness["active_fraction"], liveness["max_abs"], liveness["output_range"]]),
        )
    )
    collected.scalar(tags.tag(path, tags.DEAD_FRACTION), liveness["dead_fraction"])
    collected.scalar(tags.tag(path, tags.NEAR_DEAD_FRACTION), liveness["near_dead_fraction"])
    collected.scalar(tags.tag(path, tags.ZERO_FRACTION), liveness["zero_fraction"])
    collected.scalar(tags.tag(path, tags.NONFINITE_ACTIVATIONS), nonfinite_activations)
    if has_gradients:
        collected.scalar(tags.tag(path, tags.OUTPUT_GRAD_NORM), _global_norm([output_grad]))
        collected.scalar(tags.tag(path, tags.NONFINITE_GRADIENTS), nonfinite_gradients)
    if entry.weights:
        values = [tf.cast(v, tf.float32) for _, v in entry.weights]
        weight_norm = _global_norm(values)
        if has_gradients:
            collected.scalar(tags.tag(path, tags.GRAD_NORM), _global_norm(weight_grads))
        collected.scalar(tags.tag(path, tags.WEIGHT_NORM), weight_norm)
        if previous:
            change = _global_norm([v - tf.cast(p, tf.float32) for v, p in zip(values, previous)])
            collected.scalar(tags.tag(path, tags.UPDATE_RATIO), change / (weight_norm + 1e-12))
            for value, prev in zip(values, previous):
                prev.assign(tf.cast(value, prev.dtype))
    return liveness["dead_fraction"], nonfinite_activations + nonfinite_gradients


def write_probe(
    writer: Any,
    layout: ProbeLayout,
    result: dict[str, Any],
    step: int,
    extra: list[tuple] = (),
    *,
    baseline: bool = False,
) -> None:
    """Write one probe's values as a single event, in TensorBoard's own formats.

    Histograms carry the ``histograms`` plugin metadata (``[buckets, 3]`` float64
    tensors, as ``tf.summary.histogram`` writes), scalars the ``scalars`` plugin
    (float32 scalar tensors, as ``tf.summary.scalar``), and per-unit records our
    plugin. ``extra`` values ``(tag, metadata, array)`` go into the same event.
    At the ``baseline`` (before any update) no update ratio is written.
    ``writer`` is an :class:`keras_relu_doctor.events.writer.EventWriter`.
    """
    from keras_relu_doctor.events.writer import summary_metadata

    scalar_meta = summary_metadata(tags.SCALARS_PLUGIN)
    histogram_meta = summary_metadata(tags.HISTOGRAMS_PLUGIN)
    values = [
        (tag, scalar_meta, np.asarray(value, np.float32))
        for tag, value in zip(layout.scalar_tags, result["scalars"])
        if not (baseline and tag.endswith("/" + tags.UPDATE_RATIO))
    ]
    values += [(tag, histogram_meta, buckets) for tag, buckets in zip(layout.histogram_tags, result["histograms"])]
    values += [
        (tag, summary_metadata(tags.PLUGIN_NAME, layout.metadata[path].to_bytes()), np.asarray(record, np.float32))
        for (tag, path), record in zip(layout.unit_tags, result["units"])
    ]
    writer.summaries(step, [*values, *extra])


def snapshot_weights(entries: list[LayerEntry]) -> dict[str, list[tf.Variable]]:
    """Our own copies of each layer's trainable weights, for ``update_ratio``.

    Plain ``tf.Variable`` objects held by the callback: the model never sees them.
    """
    return {
        entry.path: [tf.Variable(tf.cast(v, tf.float32), trainable=False) for _, v in entry.weights]
        for entry in entries
        if entry.measured and entry.weights
    }


def to_numpy(result: dict[str, Any]) -> dict[str, Any]:
    """The probe's tensors as numpy arrays (``units`` stays a tuple of arrays)."""
    return {
        key: tuple(np.asarray(item) for item in value) if isinstance(value, tuple) else np.asarray(value)
        for key, value in result.items()
    }

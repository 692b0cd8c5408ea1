"""In-graph measurements on the probe batch: one compiled function per run.

:func:`build_probe_function` makes one ``tf.function``: a forward pass over
every probe sample that records every measured layer's output (and the input
of its activation) for the per-unit liveness and the histograms; then the
gradients of the compiled loss with respect to those outputs and to the
trainable weights, on the first ``gradient_samples`` samples (a second
forward pass when the probe holds more, so the first pass's outputs are
freed rather than kept for a backward pass); and norms.
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
import gc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from keras_relu_doctor import tags
from keras_relu_doctor.probe.distribute import default_replica_context, writes_summaries  # noqa: F401
from keras_relu_doctor.probe.forward import ProbeBase
from keras_relu_doctor.probe.layers import LayerEntry
from keras_relu_doctor.probe.layout import (
    HISTOGRAM_SAMPLE,
    MODE_TRAINING,
    ProbeLayout,
    ProbeSettings,
    fill_layout,
    new_layout,
    sample_positions,
)
from keras_relu_doctor.probe.recording import Record, Trace, recording

# A probe graph above this many operations (about 14 MB of Python objects) is
# collected as soon as the probe is released (see TensorFlowProbe.release).
COLLECT_ABOVE_OPERATIONS = 2000


def _dense(values: Any) -> tf.Tensor:
    # Embedding gradients arrive as IndexedSlices.
    return tf.convert_to_tensor(values) if isinstance(values, tf.IndexedSlices) else values


def _units_last(output: tf.Tensor, layer: keras.layers.Layer) -> tf.Tensor:
    """Output as [samples, positions, units]; units are the channel axis."""
    output = tf.cast(output, tf.float32)
    rank = output.shape.rank
    if rank == 1:
        return tf.reshape(output, [-1, 1, 1])
    if rank and rank > 2 and getattr(layer, "data_format", "channels_last") == "channels_first":
        output = tf.transpose(output, [0, *range(2, rank), 1])
    samples, units = output.shape[0], output.shape[-1]
    if samples is not None and units is not None:
        return tf.reshape(output, [samples, -1, units])  # static: one op, no shape arithmetic
    units = units if units is not None else tf.shape(output)[-1]
    return tf.reshape(output, [tf.shape(output)[0], -1, units])


def _extremes(output: tf.Tensor, layer: keras.layers.Layer) -> tuple[tf.Tensor, tf.Tensor]:
    """Each sample's largest and smallest output per unit, ``[samples, units]`` each.

    The only two passes over a layer's output: everything else about its
    units is computed from these small matrices. NaN propagates through both.
    """
    by_unit = _units_last(output, layer)
    return tf.reduce_max(by_unit, axis=1), tf.reduce_min(by_unit, axis=1)


def liveness_from_extremes(highest: tf.Tensor, lowest: tf.Tensor, tolerance: float) -> dict[str, tf.Tensor]:
    """Per-unit statistics from each sample's largest and smallest output (``[samples, units]``).

    A unit is active on a sample when its |output| exceeds ``tolerance`` at any
    position (the larger of ``highest`` and ``-lowest``); a NaN/Inf output
    counts as active (infinite): such a unit is broken, not dead.
    ``nonfinite`` counts, per unit, the samples on which it output NaN/Inf;
    ``highest``/``lowest`` are over finite values.
    """
    finite_high, finite_low = tf.math.is_finite(highest), tf.math.is_finite(lowest)
    magnitude = tf.maximum(highest, -lowest)
    magnitude = tf.where(tf.math.is_nan(magnitude), tf.fill(tf.shape(magnitude), np.float32(np.inf)), magnitude)
    top = tf.reduce_max(tf.where(finite_high, highest, -np.inf), axis=0)
    bottom = tf.reduce_min(tf.where(finite_low, lowest, np.inf), axis=0)
    return {
        "active_fraction": tf.reduce_mean(tf.cast(magnitude > tolerance, tf.float32), axis=0),
        "max_abs": tf.reduce_max(magnitude, axis=0),
        "output_range": tf.where(top >= bottom, top - bottom, 0.0),
        "highest": top,
        "lowest": bottom,
        "nonfinite": tf.reduce_sum(tf.cast(~(finite_high & finite_low), tf.float32), axis=0),
    }


def unit_liveness(output: tf.Tensor, layer: keras.layers.Layer, tolerance: float) -> dict[str, tf.Tensor]:
    """Per-unit active fraction, max |output| and output range, and the layer's dead/near-dead fractions.

    A unit is dead when its output is exactly 0 on every sample; near-dead when
    it is never active yet not exactly 0 (PReLU/LeakyReLU units at ~1e-7).
    The probe computes the same for all layers at once.

    >>> import keras, tensorflow as tf
    >>> stats = unit_liveness(tf.constant([[0.0, 1.0], [0.0, -2.0]]), keras.layers.Dense(2), 1e-6)
    >>> float(stats["dead_fraction"]), stats["max_abs"].numpy().tolist()
    (0.5, [0.0, 2.0])
    """
    live = liveness_from_extremes(*_extremes(output, layer), tolerance)
    max_abs = live["max_abs"]
    live["dead_fraction"] = tf.reduce_mean(tf.cast(max_abs == 0.0, tf.float32))
    live["near_dead_fraction"] = tf.reduce_mean(tf.cast((max_abs > 0.0) & (max_abs <= tolerance), tf.float32))
    return live


def _sampled(flat: tf.Tensor, sample_size: int, positions: dict[Any, tf.Tensor] | None = None) -> tf.Tensor:
    """Every value of a tensor of at most ``sample_size``; of a larger one, exactly ``sample_size`` of them.

    The values at :func:`~keras_relu_doctor.probe.layout.sample_positions`, as
    every backend takes them (a tensor whose length is known only when it runs
    takes evenly strided ones). ``positions`` caches, within one trace, the
    indices per length (and the gather axis): hundreds of tensors then add one op each.
    """
    length = flat.shape[0]
    if length is not None and length <= sample_size:
        return flat
    if length is None:
        total = tf.shape(flat)[0]
        stride = tf.maximum(1, -(-total // sample_size))
        return tf.strided_slice(flat, [0], [total], [stride])
    positions = {} if positions is None else positions
    if (length, sample_size) not in positions:
        positions[length, sample_size] = tf.constant(sample_positions(length, sample_size))
    if "axis" not in positions:
        positions["axis"] = tf.constant(0)
    return tf.gather(flat, positions[length, sample_size], axis=positions["axis"])


@dataclass(frozen=True)
class _Sample:
    """A tensor's histogram sample (1-D, at most the sample size) and how many values the whole tensor holds."""

    values: tf.Tensor
    length: int | tf.Tensor


def _sample(value: Any, sample_size: int, positions: dict[Any, tf.Tensor] | None = None) -> _Sample:
    """``value``'s histogram sample (``positions`` as in :func:`_sampled`)."""
    positions = {} if positions is None else positions
    if "flat" not in positions:
        positions["flat"] = tf.constant([-1])
    value = _dense(value)
    flat = value if value.shape.rank == 1 else tf.reshape(value, positions["flat"])
    length = int(flat.shape[0]) if flat.shape[0] is not None else tf.size(flat)
    return _Sample(_sampled(flat, sample_size, positions), length)


def _restore_order(parts: list[tf.Tensor], order: list[int]) -> tf.Tensor:
    return tf.gather(tf.concat(parts, 0), tf.constant(np.argsort(order), tf.int32))


def histogram_tensors(
    values: list[tf.Tensor], buckets: int, sample_size: int = HISTOGRAM_SAMPLE, ranges: tf.Tensor | None = None
) -> tf.Tensor:
    """TensorBoard histogram tensors ``[len(values), buckets, (left, right, count)]``.

    Same layout and edge rules as ``tensorboard.plugins.histogram.summary_v2``
    (empty input: all zeros; one distinct value: zero-width buckets with the
    count in the last; edges ``linspace(min, max)``; float64 bucketing), with
    NaN/Inf left out; exact for tensors of at most ``sample_size`` values. A
    larger tensor is bucketed on a sample of that size (:func:`sample_positions`): its
    edges span the sample (or ``ranges[i]``, an exact ``(low, high)`` known
    elsewhere; NaN where not) and its counts are scaled to the tensor's size,
    so a bucket's share is an estimate (a test compares it with the whole).

    >>> import tensorflow as tf
    >>> histogram_tensors([tf.constant([0.0, 0.0, 1.0, 2.0])], 2).numpy()[0].tolist()
    [[0.0, 1.0, 2.0], [1.0, 2.0, 2.0]]
    """
    positions: dict[Any, tf.Tensor] = {}
    samples = [_sample(value, sample_size, positions) for value in values]
    return _histograms(samples, buckets, sample_size, ranges)["histograms"]


def _histograms(
    sampled: list[_Sample], buckets: int, sample_size: int, ranges: tf.Tensor | None
) -> dict[str, tf.Tensor]:
    """Histograms and, per tensor, estimates from its sample: NaN/Inf values, sum of squares, share of zeros.

    Samples of ``sample_size`` values (every large tensor's) are the rows of
    one matrix, reduced along its rows; the rest (small tensors, whole) go
    into one vector, each value tagged with its tensor's row, reduced by
    segments. Either way a few operations serve all histograms, however many
    there are and whatever their sizes, so the graph and its tracing do not
    grow with them; one ``bincount`` counts every bucket. No ``tf.cond``
    (TensorBoard's version costs ~0.15 s of tracing per histogram). Float32
    input is bucketed in float32, anything else in float64; NaN/Inf go to an
    overflow bin per histogram that is dropped.
    """
    bins, count = buckets + 1, len(sampled)  # the last bin of each histogram collects NaN/Inf
    samples = [item.values for item in sampled]
    dtype = tf.float32 if all(sample.dtype == tf.float32 for sample in samples) else tf.float64
    full = [i for i, sample in enumerate(samples) if sample.shape[0] == sample_size]
    rest = [i for i, sample in enumerate(samples) if sample.shape[0] != sample_size]
    parts = []
    if full:
        matrix = tf.stack([tf.cast(samples[i], dtype) for i in full])
        parts.append(_Part(full, matrix, lambda name, v: getattr(tf.math, f"reduce_{name}")(v, axis=1),
                           lambda row_values: row_values[:, None], tf.constant([[i] for i in full])))  # fmt: skip
    if rest:
        joined = tf.concat([tf.cast(samples[i], dtype) for i in rest], 0)
        rows = tf.repeat(tf.range(len(rest)), _lengths([samples[i] for i in rest]))
        reduce = lambda name, v: getattr(tf.math, f"unsorted_segment_{name}")(v, rows, len(rest))  # noqa: E731
        parts.append(_Part(rest, joined, reduce, lambda row_values: tf.gather(row_values, rows), tf.gather(rest, rows)))
    order = [i for part in parts for i in part.members]
    stats = [part.statistics() for part in parts]
    counted, low, high, squares, zeros = (
        _restore_order([tf.cast(stat[key], tf.float64) for stat in stats], order)
        for key in ("counted", "low", "high", "squares", "zeros")
    )
    length = tf.cast(_lengths(samples), tf.float64)
    if ranges is not None:
        known = tf.cast(ranges, tf.float64)
        low = tf.where(tf.math.is_finite(known[:, 0]), known[:, 0], low)
        high = tf.where(tf.math.is_finite(known[:, 1]), known[:, 1], high)
    empty = tf.equal(counted, 0.0)
    low = tf.where(empty, tf.zeros_like(low), low)
    high = tf.where(empty, tf.zeros_like(high), high)
    spread = high - low
    width = tf.where(tf.equal(spread, 0.0), tf.ones_like(spread), spread / buckets)
    indices = [part.bucket_indices(low, width, buckets) for part in parts]
    binned = tf.math.bincount(tf.concat(indices, 0), minlength=count * bins, maxlength=count * bins, dtype=tf.float64)
    scale = _as_vector([item.length for item in sampled], tf.float64) / tf.maximum(length, 1.0)  # a sample stands for this many values
    total = counted * scale
    spread_counts = tf.reshape(binned, [count, bins])[:, :buckets] * scale[:, None]
    single_counts = tf.one_hot(buckets - 1, buckets, dtype=tf.float64)[None, :] * total[:, None]
    counts = tf.where(tf.equal(spread, 0.0)[:, None], single_counts, spread_counts)
    fractions = tf.range(buckets, dtype=tf.float64) / buckets
    left = low[:, None] + spread[:, None] * fractions[None, :]
    right = tf.concat([left[:, 1:], high[:, None]], axis=1)
    return {
        "histograms": tf.stack([left, right, counts], axis=2),
        "nonfinite": (length - counted) * scale,
        "squares": squares * scale,
        "zero_share": zeros / tf.maximum(counted, 1.0),
    }


@dataclass
class _Part:
    """Samples laid out one way (a matrix of rows, or a vector of segments), and how to reduce them per row."""

    members: list[int]  # the histograms, in row order
    values: tf.Tensor
    reduce: Callable[[str, tf.Tensor], tf.Tensor]  # (min|max|sum, per-value tensor) -> one value per row
    per_value: Callable[[tf.Tensor], tf.Tensor]  # a value per row (in ``members`` order), broadcast to every value
    histogram: tf.Tensor  # each value's histogram, broadcast like ``values``

    def __post_init__(self) -> None:
        self.finite = tf.math.is_finite(self.values)

    def statistics(self) -> dict[str, tf.Tensor]:
        """Per row: finite values, their lowest, highest and sum of squares, and exact zeros."""
        values, finite, dtype = self.values, self.finite, self.values.dtype
        clean = tf.where(finite, values, tf.zeros_like(values))
        return {
            "counted": self.reduce("sum", tf.cast(finite, dtype)),
            "low": self.reduce("min", tf.where(finite, values, tf.cast(np.inf, dtype))),
            "high": self.reduce("max", tf.where(finite, values, tf.cast(-np.inf, dtype))),
            "squares": self.reduce("sum", tf.square(clean)),
            "zeros": self.reduce("sum", tf.cast(tf.equal(values, 0.0), dtype)),
        }

    def bucket_indices(self, low: tf.Tensor, width: tf.Tensor, buckets: int) -> tf.Tensor:
        """Each value's bin in the one ``bincount`` of all histograms (``buckets + 1`` bins each)."""
        dtype = self.values.dtype
        row_low, row_width = (self.per_value(tf.cast(tf.gather(v, self.members), dtype)) for v in (low, width))
        index = tf.cast(tf.floor((self.values - row_low) / row_width), tf.int32)
        index = tf.where(self.finite, tf.clip_by_value(index, 0, buckets - 1), buckets)
        return tf.reshape(index + self.histogram * (buckets + 1), [-1])


def _lengths(flats: list[tf.Tensor], dtype: tf.DType = tf.int32) -> tf.Tensor:
    """The lengths of 1-D tensors as one vector (a constant when all are static)."""
    return _as_vector([int(flat.shape[0]) if flat.shape[0] is not None else tf.size(flat) for flat in flats], dtype)


def _as_vector(lengths: list[int | tf.Tensor], dtype: tf.DType) -> tf.Tensor:
    """Counts, Python ints or scalar tensors, as one vector (a constant when all are ints)."""
    if all(isinstance(length, int) for length in lengths):
        return tf.constant(lengths, dtype)
    return tf.stack([tf.cast(length, dtype) for length in lengths])


@dataclass
class _Histogram:
    """One histogram to bucket: its tag, sample, the layer it belongs to, and what else reads its sample."""

    tag: str
    sample: _Sample
    layer: int  # row of its layer among the reached ones
    exact_range: bool = False  # edges from the layer's liveness (activations), not the sample
    gradient: bool = False  # its NaN/Inf count adds to the layer's nonfinite_gradients


@dataclass
class _Collected:
    """What one trace of the probe measures, in writing order.

    Scalars come in blocks, a vector with one tag per value. ``norms`` are
    ``(tag or None, rows of the histograms of the same tensors)``, their
    tensors' half sums of squares ``(norm, l2_loss)`` in ``parts``;
    ``ratios`` are update ratios ``(tag, change norm, weight norm)``.
    """

    histograms: list[_Histogram] = field(default_factory=list)
    blocks: list[tuple[list[str], tf.Tensor]] = field(default_factory=list)
    units: list[tuple[str, str, tf.Tensor]] = field(default_factory=list)
    norms: list[tuple[str | None, list[int]]] = field(default_factory=list)
    parts: list[tuple[int, tf.Tensor]] = field(default_factory=list)
    ratios: list[tuple[str, int, int]] = field(default_factory=list)
    positions: dict[Any, tf.Tensor] = field(default_factory=dict)  # sample indices per tensor length
    updates: list[tuple[str, int, list[_Sample]]] = field(default_factory=list)  # (path, weight norm, weight samples)

    def scalars(self, tag_list: list[str], vector: tf.Tensor) -> None:
        if tag_list:
            self.blocks.append((list(tag_list), tf.reshape(tf.cast(vector, tf.float32), [-1])))

    def histogram(self, tag: str, values: Any, layer: int, *, exact_range: bool = False, gradient: bool = False) -> int:
        """Sample ``values`` now (the tensor itself need not outlive this) for a histogram bucketed at the end."""
        sample = _sample(values, HISTOGRAM_SAMPLE, self.positions)
        self.histograms.append(_Histogram(tag, sample, layer, exact_range, gradient))
        return len(self.histograms) - 1

    def measured(self) -> list[tf.Tensor]:
        """Every tensor measured so far: what must be computed before the probe's tensors can be freed."""
        return [
            *(vector for _, vector in self.blocks),
            *(record for _, _, record in self.units),
            *(histogram.sample.values for histogram in self.histograms),
            *(part for _, part in self.parts),
        ]

    def norm(self, tag: str | None, tensors: list[Any], rows: list[int] = ()) -> int:
        """A norm over ``tensors``, each read once (``l2_loss``, half the sum of squares)."""
        return self.norm_of_halves(tag, [tf.nn.l2_loss(_as_float(tensor)) for tensor in tensors], rows)

    def norm_of_halves(self, tag: str | None, halves: list[tf.Tensor], rows: list[int] = ()) -> int:
        """A norm from half sums of squares already computed; returns its index."""
        self.norms.append((tag, list(rows)))
        self.parts.extend((len(self.norms) - 1, half) for half in halves)
        return len(self.norms) - 1


def _as_float(tensor: Any) -> tf.Tensor:
    """``tensor`` dense, in float64 if it is, else float32."""
    tensor = _dense(tensor)
    return tensor if tensor.dtype == tf.float64 else tf.cast(tensor, tf.float32)


def build_probe_function(
    model: keras.Model,
    entries: list[LayerEntry],
    loss_fn: Callable[..., tf.Tensor] | None,
    settings: ProbeSettings,
    snapshot: WeightSnapshot | None,
) -> tuple[Callable[..., dict[str, Any]], ProbeLayout]:
    """One compiled function: forward, gradients, liveness, histograms, norms.

    ``entries`` are all the model's layers (:func:`walk_layers`); those marked
    measured are measured, the others only traced for the layer graph. With
    ``loss_fn`` None no gradient is computed or written (``layout.gradients``
    is False). The function returns ``histograms`` (``[m, buckets, 3]``),
    ``scalars`` (``[s]``) and ``units`` (one ``[3, units]`` per layer), laid
    out as the :class:`ProbeLayout` returned beside it says, for
    :func:`write_probe`; and, for the live checks, ``dead_fraction`` and
    ``nonfinite`` (one value per measured layer, in ``entries`` order),
    ``measured`` (1.0 where a layer's output was reached) and ``loss``.

    Its cost is close to the forward and backward passes it contains: a layer's
    output is read twice (its largest and smallest value per sample and unit,
    from which every per-unit statistic follows), each gradient once (its sum
    of squares), and histograms are bucketed on samples of
    :data:`HISTOGRAM_SAMPLE` values. The measurements of all layers run as
    a few operations on stacked vectors, which keeps the graph, and so its
    tracing, small.
    """
    layout = new_layout(entries, settings, gradients=loss_fn is not None)
    measured_entries = [entry for entry in entries if entry.measured]
    batch_statistics = settings.mode == MODE_TRAINING

    # autograph=False: the body branches on Python values only, and converting
    # every Keras call it traces costs seconds.
    @tf.function(reduce_retracing=True, autograph=False)
    def probe(x: Any, y: Any, sample_weight: Any) -> dict[str, Any]:
        # The forward pass over every probe sample: liveness, activations, the loss.
        with tf.GradientTape() as tape, keras.StatelessScope():
            with recording(entries, _watched_by(tape), batch_statistics=batch_statistics) as trace:
                y_pred = model(x, training=False)
            loss = loss_fn(y, y_pred, sample_weight) if loss_fn is not None else tf.constant(0.0)
        fill_layout(layout, entries, trace, y_pred)
        records = trace.records
        reached = [entry for entry in measured_entries if records[entry.path].output is not None]
        collected = _Collected()
        if loss_fn is not None:
            collected.scalars([tags.PROBE_LOSS], loss)
        units = _measure_units(reached, [records[entry.path].output for entry in reached], settings.tolerance, collected)
        for index, entry in enumerate(reached):
            _measure_outputs(entry, records[entry.path], index, collected)
        weight_grads, output_grads = _gradients(
            model, entries, reached, settings, (loss_fn, loss, tape, trace), (x, y, sample_weight), collected
        )
        for index, (entry, output_grad) in enumerate(zip(reached, output_grads)):
            grads = [next(weight_grads) for _ in entry.weights]
            _measure_weights(entry, index, grads, output_grad, snapshot, collected)
        _measure_updates(collected, snapshot)
        result = _finish(collected, [entry.path for entry in reached], units["ranges"], settings)
        layout.histogram_tags[:] = [histogram.tag for histogram in collected.histograms]
        layout.scalar_tags[:] = [tag for tag_list, _ in collected.blocks for tag in tag_list]
        layout.unit_tags[:] = [(tag, path) for tag, path, _ in collected.units]
        # The live checks' values, one per measured layer in ``entries`` order (0 where not reached).
        position = {entry.path: index for index, entry in enumerate(reached)}
        rows = tf.constant([position.get(entry.path, len(reached)) for entry in measured_entries], tf.int32)
        per_layer = lambda vector: tf.gather(tf.concat([tf.cast(vector, tf.float32), [0.0]], 0), rows)  # noqa: E731
        return {
            "histograms": result["histograms"],
            "scalars": result["scalars"],
            "units": tuple(record for _, _, record in collected.units),
            "dead_fraction": per_layer(units["dead_fraction"]),
            "nonfinite": per_layer(units["nonfinite"] + result["nonfinite_gradients"]),
            "measured": per_layer(tf.ones([len(reached)])),
            "loss": tf.cast(loss, tf.float32),
        }

    return probe, layout


def _gradients(
    model: keras.Model,
    entries: list[LayerEntry],
    reached: list[LayerEntry],
    settings: ProbeSettings,
    forward: tuple[Any, tf.Tensor, tf.GradientTape, Trace],
    batch: tuple[Any, Any, Any],
    collected: _Collected,
) -> tuple[Iterator[Any], list[Any]]:
    """The gradients of the loss for ``reached`` layers' weights (an iterator, in layer order) and outputs.

    On at most ``settings.gradient_samples`` samples, the first of the probe:
    where the probe holds more, a second forward pass over those runs once
    everything measured on the first pass is computed (``collected``), so the
    first pass's layer outputs are freed instead of being kept for the
    backward pass, and memory follows the gradient samples, not the probe.
    All None without a loss.
    """
    loss_fn, loss, tape, trace = forward
    sources = [_tf_variable(v) for entry in reached for _, v in entry.weights]
    if loss_fn is None or not reached:
        return iter([None] * len(sources)), [None] * len(reached)
    x, y, sample_weight = batch
    limit = settings.gradient_samples
    samples = keras.tree.flatten(x)[0].shape[0]
    if limit is not None and (samples is None or samples > limit):
        with tf.control_dependencies(collected.measured() + [loss]):
            x, y, sample_weight = (
                None if part is None else keras.tree.map_structure(lambda t: tf.identity(t[:limit]), part)
                for part in (x, y, sample_weight)
            )
        with tf.GradientTape() as tape, keras.StatelessScope():
            with recording(entries, _watched_by(tape), batch_statistics=settings.mode == MODE_TRAINING) as trace:
                y_pred = model(x, training=False)
            loss = loss_fn(y, y_pred, sample_weight)
    outputs = [trace.records[entry.path].output for entry in reached]
    targets = [output for output in outputs if output is not None]
    found = iter(tape.gradient(loss, sources + targets, unconnected_gradients=tf.UnconnectedGradients.ZERO))
    weight_grads = [next(found) for _ in sources]
    return iter(weight_grads), [None if output is None else next(found) for output in outputs]


def _measure_units(
    reached: list[LayerEntry], outputs: list[tf.Tensor], tolerance: float, collected: _Collected
) -> dict[str, tf.Tensor]:
    """Every layer's per-unit record and liveness scalars, computed on all layers' units at once.

    Returns, one value per reached layer, ``dead_fraction``, ``nonfinite``
    (samples x units with NaN/Inf output) and ``ranges`` (``[layers, 2]``:
    the lowest and highest finite output, the activation histogram's edges;
    NaN where there is none).
    """
    if not reached:
        empty = tf.zeros([0])
        return {"dead_fraction": empty, "nonfinite": empty, "ranges": tf.zeros([0, 2])}
    extremes = [_extremes(output, entry.layer) for entry, output in zip(reached, outputs)]
    # Units of layers whose outputs hold the same samples sit side by side in one matrix.
    groups: dict[object, list[int]] = {}
    for index, (highest, _) in enumerate(extremes):
        key = highest.shape[0] if highest.shape[0] is not None else ("dynamic", index)
        groups.setdefault(key, []).append(index)
    order = [index for members in groups.values() for index in members]
    parts = [
        liveness_from_extremes(
            tf.concat([extremes[i][0] for i in members], 1), tf.concat([extremes[i][1] for i in members], 1), tolerance
        )
        for members in groups.values()
    ]
    live = {key: tf.concat([part[key] for part in parts], 0) for key in parts[0]}
    counts = [_units(extremes[i][0]) for i in order]
    segments = tf.repeat(tf.range(len(order)), tf.stack(counts))

    def per_layer(reduce: Callable[..., tf.Tensor], values: tf.Tensor) -> tf.Tensor:
        return _restore_order([reduce(values, segments, len(order))], order)

    max_abs = live["max_abs"]
    dead_fraction = per_layer(tf.math.unsorted_segment_mean, tf.cast(max_abs == 0.0, tf.float32))
    near_dead = per_layer(tf.math.unsorted_segment_mean, tf.cast((max_abs > 0.0) & (max_abs <= tolerance), tf.float32))
    nonfinite = per_layer(tf.math.unsorted_segment_sum, live["nonfinite"])
    lowest = per_layer(tf.math.unsorted_segment_min, live["lowest"])
    highest = per_layer(tf.math.unsorted_segment_max, live["highest"])
    known = tf.math.is_finite(lowest) & tf.math.is_finite(highest) & (lowest <= highest)
    ranges = tf.where(known[:, None], tf.stack([lowest, highest], 1), np.float32(np.nan))
    records = tf.stack([live["active_fraction"], max_abs, live["output_range"]])
    sizes = tf.stack(counts) if any(isinstance(count, tf.Tensor) for count in counts) else counts
    split = lambda values, axis=0: tf.split(values, sizes, axis=axis, num=len(counts))  # noqa: E731
    for slot, (record, active) in enumerate(zip(split(records, 1), split(live["active_fraction"]))):
        path = reached[order[slot]].path
        collected.units.append((tags.tag(path, tags.UNITS), path, record))
        collected.histogram(tags.tag(path, tags.UNIT_ACTIVITY), active, order[slot])
    paths = [entry.path for entry in reached]
    collected.scalars([tags.tag(p, tags.DEAD_FRACTION) for p in paths], dead_fraction)
    collected.scalars([tags.tag(p, tags.NEAR_DEAD_FRACTION) for p in paths], near_dead)
    collected.scalars([tags.tag(p, tags.NONFINITE_ACTIVATIONS) for p in paths], nonfinite)
    return {"dead_fraction": dead_fraction, "nonfinite": nonfinite, "ranges": ranges}


def _units(per_sample: tf.Tensor) -> int | tf.Tensor:
    return int(per_sample.shape[1]) if per_sample.shape[1] is not None else tf.shape(per_sample)[1]


def _measure_outputs(entry: LayerEntry, record: Record, index: int, collected: _Collected) -> None:
    """Add one layer's output (and pre-activation) histograms; ``index`` is its row among the reached layers."""
    collected.histogram(tags.tag(entry.path, tags.ACTIVATIONS), record.output, index, exact_range=True)
    if record.preactivation is not None and not record.preactivation_is_measured:
        collected.histogram(tags.tag(entry.path, tags.PREACTIVATIONS), record.preactivation, index)


def _measure_weights(
    entry: LayerEntry,
    index: int,
    weight_grads: list[tf.Tensor | None],
    output_grad: tf.Tensor | None,
    snapshot: WeightSnapshot | None,
    collected: _Collected,
) -> None:
    """Add one layer's gradient histograms, sums of squares for its norms, and weight samples to ``collected``.

    Gradients are None when the model has no loss to differentiate: then no
    gradient value is written at all (not zeros). ``index`` is the layer's
    row among the reached layers.
    """
    path = entry.path
    if output_grad is not None:
        rows = [
            collected.histogram(tags.gradient_tag(path, name), grad, index, gradient=True)
            for (name, _), grad in zip(entry.weights, weight_grads)
        ]
        row = collected.histogram(tags.tag(path, tags.OUTPUT_GRADIENT), output_grad, index, gradient=True)
        collected.norm(tags.tag(path, tags.OUTPUT_GRAD_NORM), [output_grad], [row])
        if entry.weights:
            collected.norm(tags.tag(path, tags.GRAD_NORM), weight_grads, rows)
    if not entry.weights:
        return
    values = [_as_float(tf.convert_to_tensor(v)) for _, v in entry.weights]  # each read once
    weights = collected.norm(tags.tag(path, tags.WEIGHT_NORM), values)
    if snapshot is not None and path in snapshot.spans:
        samples = [_sample(value, HISTOGRAM_SAMPLE, collected.positions) for value in values]
        collected.updates.append((path, weights, samples))


def _measure_updates(collected: _Collected, snapshot: WeightSnapshot | None) -> None:
    """Every layer's update ratio, from its weights' samples against the last measurement's, in a few operations.

    The change's sum of squares is estimated from each weight's histogram
    sample (:func:`~keras_relu_doctor.probe.layout.sample_positions`), scaled to the weight's size (exact for weights of at most
    :data:`HISTOGRAM_SAMPLE` values); the weight norm it is divided by is exact.
    The samples then replace the snapshot's.
    """
    if snapshot is None or not collected.updates:
        return
    samples = [sample for _, _, layer_samples in collected.updates for sample in layer_samples]
    current = tf.concat([tf.cast(sample.values, tf.float32) for sample in samples], 0)
    sizes = [int(sample.values.shape[0]) for sample in samples]
    scale = np.repeat([sample.length / size for sample, size in zip(samples, sizes)], sizes).astype(np.float32)
    layer_sizes = [sum(int(s.values.shape[0]) for s in layer_samples) for _, _, layer_samples in collected.updates]
    layer_of_value = np.repeat(np.arange(len(layer_sizes), dtype=np.int32), layer_sizes)
    kept = np.concatenate([np.arange(*snapshot.spans[path]) for path, _, _ in collected.updates])
    if np.array_equal(kept, np.arange(snapshot.size)):  # every layer with weights was reached
        change = current - snapshot.values
        snapshot.values.assign(current)
    else:
        change = current - tf.gather(snapshot.values, kept)
        snapshot.values.scatter_nd_update(kept[:, None], current)
    halves = 0.5 * tf.math.unsorted_segment_sum(tf.square(change) * scale, layer_of_value, len(layer_sizes))
    for (path, weights, _), half in zip(collected.updates, tf.unstack(halves)):
        collected.ratios.append((tags.tag(path, tags.UPDATE_RATIO), collected.norm_of_halves(None, [half]), weights))


def _finish(collected: _Collected, paths: list[str], ranges: tf.Tensor, settings: ProbeSettings) -> dict[str, tf.Tensor]:
    """Bucket every histogram at once; add the scalars that need the histograms' samples.

    A norm that met NaN/Inf keeps the finite values only, estimated from the
    histogram samples of the same tensors; ``nonfinite_gradients`` is
    estimated from those samples (at least 1 where a gradient's sum of
    squares is NaN, so NaN off the sample is not missed).
    """
    histograms, layers = collected.histograms, len(paths)
    if not histograms:
        return {
            "histograms": tf.zeros([0, settings.buckets, 3], tf.float64),
            "scalars": _concat_blocks(collected),
            "nonfinite_gradients": tf.zeros([layers]),
        }
    padded = tf.concat([tf.cast(ranges, tf.float64), tf.fill([1, 2], tf.cast(np.nan, tf.float64))], 0)
    range_rows = tf.constant([h.layer if h.exact_range else layers for h in histograms], tf.int32)
    bucketed = _histograms(
        [h.sample for h in histograms], settings.buckets, HISTOGRAM_SAMPLE, tf.gather(padded, range_rows)
    )
    squares = _norm_squares(collected, bucketed["squares"])
    written = [(index, tag) for index, (tag, _) in enumerate(collected.norms) if tag is not None]
    if written:
        collected.scalars([tag for _, tag in written], tf.sqrt(tf.gather(squares, [index for index, _ in written])))
    if collected.ratios:
        change, weights = (tf.sqrt(tf.gather(squares, [ratio[i] for ratio in collected.ratios])) for i in (1, 2))
        collected.scalars([tag for tag, _, _ in collected.ratios], change / (weights + 1e-12))
    activations = [row for row, h in enumerate(histograms) if h.exact_range]
    collected.scalars(
        [tags.tag(paths[histograms[row].layer], tags.ZERO_FRACTION) for row in activations],
        tf.gather(bucketed["zero_share"], activations),
    )
    gradient_rows = [row for row, h in enumerate(histograms) if h.gradient]
    nonfinite_gradients = tf.zeros([layers])
    if gradient_rows:
        # A NaN sum of squares means a NaN somewhere, sampled or not.
        measured = [(index, histograms[rows[0]].layer) for index, (_, rows) in enumerate(collected.norms) if rows]
        missed = tf.math.unsorted_segment_max(
            tf.cast(tf.math.is_nan(tf.gather(squares, [index for index, _ in measured])), tf.float64),
            tf.constant([layer for _, layer in measured], tf.int32),
            layers,
        )
        counted = tf.math.unsorted_segment_sum(
            tf.gather(bucketed["nonfinite"], gradient_rows),
            tf.constant([histograms[row].layer for row in gradient_rows], tf.int32),
            layers,
        )
        nonfinite_gradients = tf.cast(tf.maximum(counted, missed), tf.float32)
        gradient_layers = sorted({histograms[row].layer for row in gradient_rows})
        collected.scalars(
            [tags.tag(paths[layer], tags.NONFINITE_GRADIENTS) for layer in gradient_layers],
            tf.gather(nonfinite_gradients, gradient_layers),
        )
    return {
        "histograms": bucketed["histograms"],
        "scalars": _concat_blocks(collected),
        "nonfinite_gradients": nonfinite_gradients,
    }


def _norm_squares(collected: _Collected, sample_squares: tf.Tensor) -> tf.Tensor:
    """Each norm's sum of squares, as one vector.

    Where the sum over whole tensors met NaN/Inf, the estimate from the same
    tensors' histogram samples (finite values only) replaces it.
    """
    count = len(collected.norms)
    if not collected.parts:
        return tf.zeros([count], tf.float64)
    halves = tf.cast(tf.stack([half for _, half in collected.parts]), tf.float64)
    exact = 2.0 * tf.math.unsorted_segment_sum(halves, tf.constant([n for n, _ in collected.parts], tf.int32), count)
    pairs = [(index, row) for index, (_, rows) in enumerate(collected.norms) for row in rows]
    if not pairs:
        return exact
    estimate = tf.math.unsorted_segment_sum(
        tf.gather(sample_squares, [row for _, row in pairs]), tf.constant([index for index, _ in pairs], tf.int32), count
    )
    return tf.where(tf.math.is_finite(exact), exact, estimate)


def _concat_blocks(collected: _Collected) -> tf.Tensor:
    return tf.concat([vector for _, vector in collected.blocks], 0) if collected.blocks else tf.zeros([0])


def _watched_by(tape: tf.GradientTape) -> Callable[[str, tf.Tensor], None]:
    """A :func:`recording` watch that has ``tape`` watch each measured output."""
    return lambda path, tensor: tape.watch(tensor)


def _tf_variable(variable: Any) -> Any:
    """The ``tf.Variable`` behind a Keras variable: TensorFlow's tape cannot zero-fill an
    unconnected Keras variable (its dtype is a string)."""
    value = getattr(variable, "value", variable)
    return value if isinstance(value, tf.Variable) else variable


@contextlib.contextmanager
def without_graph_rewrites() -> Iterator[None]:
    """Run TensorFlow functions called inside this block through grappler with every rewriting pass off.

    Grappler's passes cost the probe's large graph more than they save, but
    grappler itself, even with no pass to run, leaves the instantiated function
    smaller than when it is switched off. On MobileNetV2's probe (10,000
    operations), the set-up and the process's memory after two logs:

    - grappler's default passes: set-up 3.7 s, 1,022 MB (1,105 MB at the first run);
    - grappler switched off (``disable_meta_optimizer``): 3.0 s, 1,117 MB;
    - grappler with every pass off (this): 2.8 s, 1,038 MB (1,065 MB at the first run).

    TensorFlow instantiates a function for the options of the call, so every
    probe call runs inside this block. Only this thread's call options change
    (``context.function_call_options``): TensorFlow's global switch,
    ``tf.config.optimizer.set_experimental_options``, would also make Keras
    rewrite its own train function again after each log.
    """
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.eager import context

    eager = context.context()
    previous = eager.function_call_options
    config = config_pb2.ConfigProto()
    config.ParseFromString(previous.config_proto_serialized)
    rewrites = config.graph_options.rewrite_options
    for option in rewrites.DESCRIPTOR.fields:
        if option.enum_type is not None and option.enum_type.name == "Toggle":
            setattr(rewrites, option.name, rewriter_config_pb2.RewriterConfig.OFF)
    rewrites.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    eager.function_call_options = context.FunctionCallOptions(
        executor_type=previous.executor_type, config_proto=config
    )
    try:
        yield
    finally:
        eager.function_call_options = previous


@dataclass
class WeightSnapshot:
    """The measured layers' weights at the last measurement, for ``update_ratio``: their samples, end to end.

    Each weight is kept as its histogram sample (at most
    :data:`HISTOGRAM_SAMPLE` values), so the snapshot stays small whatever the
    model's size (ResNet50: 5 MB, where whole copies took 94 MB). ``values`` is
    a plain ``tf.Variable`` held by the callback: the model never sees it.
    """

    values: tf.Variable
    spans: dict[str, tuple[int, int]]  # each layer's samples: values[start:stop]

    @property
    def size(self) -> int:
        return int(self.values.shape[0])


def snapshot_weights(entries: list[LayerEntry]) -> WeightSnapshot | None:
    """The measured layers' current weights as a :class:`WeightSnapshot` (None when no layer has weights)."""
    measured = [entry for entry in entries if entry.measured and entry.weights]
    if not measured:
        return None
    positions: dict[Any, tf.Tensor] = {}
    samples, spans, start = [], {}, 0
    for entry in measured:
        layer = [_sample(tf.cast(tf.convert_to_tensor(v), tf.float32), HISTOGRAM_SAMPLE, positions).values for _, v in entry.weights]
        samples.extend(layer)
        spans[entry.path] = (start, start + sum(int(sample.shape[0]) for sample in layer))
        start = spans[entry.path][1]
    values = tf.Variable(tf.concat(samples, 0), trainable=False, name="relu_doctor_weight_samples")
    return WeightSnapshot(values, spans)


def to_numpy(result: dict[str, Any]) -> dict[str, Any]:
    """The probe's tensors as numpy arrays (``units`` stays a tuple of arrays)."""
    return {
        key: tuple(np.asarray(item) for item in value) if isinstance(value, tuple) else np.asarray(value)
        for key, value in result.items()
    }


class TensorFlowProbe(ProbeBase):
    """The probe on the TensorFlow backend: one ``tf.function``, run through grappler with no rewriting pass.

    Example (inside the callback)::

        probe = TensorFlowProbe(model, entries, loss_fn, settings)
        probe.build(x, y, None)
        write_probe(event_writer, probe.layout, probe(x, y, None), step)
    """

    def __init__(self, model: keras.Model, entries: list[LayerEntry], loss_fn: Any, settings: ProbeSettings) -> None:
        super().__init__(model, entries, loss_fn, settings)
        self.function, self.layout = build_probe_function(model, entries, loss_fn, settings, snapshot_weights(entries))
        self.operations = 0  # in the traced graph, once built

    def build(self, x: Any, y: Any, sample_weight: Any) -> None:
        """Trace now: it costs the same as at the first log, and fills ``layout``."""
        with default_replica_context():
            self.operations = len(self.function.get_concrete_function(x, y, sample_weight).graph.get_operations())

    def release(self) -> None:
        """Drop the function; collect its traced graph at once when it is large.

        TensorFlow frees the instantiated function with its last reference, but
        the traced Python graph (about 7 KB per operation: 70 MB for
        MobileNetV2's 10,000) is a reference cycle that only Python's collector
        frees. A full collection costs about 0.2 s with TensorFlow and Keras
        loaded, so a graph of fewer than :data:`COLLECT_ABOVE_OPERATIONS` is
        left to the collector's own schedule.
        """
        self.function = None
        if self.operations > COLLECT_ABOVE_OPERATIONS:
            gc.collect()

    def __call__(self, x: Any, y: Any, sample_weight: Any) -> dict[str, Any]:
        with without_graph_rewrites(), default_replica_context():
            return to_numpy(self.function(x, y, sample_weight))

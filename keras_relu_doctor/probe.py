"""In-graph measurements on the probe batch: which layers, what they output, and why.

The callback builds one ``tf.function`` per run from :func:`build_probe_function`:
a forward pass in inference mode that records every measured layer's output
(and the input of its activation), the gradients of the compiled loss with
respect to those outputs and to the trainable weights, the per-unit liveness,
histograms and norms. :func:`write_probe` then writes the values as one event
in TensorBoard's own formats, with the tags of :mod:`tags`: building protos
in Python costs well under a millisecond, while ``tf.summary`` ops in the
graph tripled its size and its tracing time.

Layer outputs are reached by wrapping, while the function is traced, each
measured layer's ``call`` (and its ``activation`` attribute, to see the
pre-activation of fused layers such as ``Dense(..., activation="relu")``). The
wrappers only observe: the traced graph computes exactly what ``model(x)`` does.
This reaches layers inside Sequential, Functional, nested and subclassed models
alike, as long as the model calls Keras layers.

Example (inside the callback)::

    layers = select_layers(model)
    probe, layout = build_probe_function(model, layers, loss_fn, settings, snapshot_weights(layers))
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

# Layers that are an activation: their input is the pre-activation.
ACTIVATION_LAYER_CLASSES = ("ReLU", "LeakyReLU", "PReLU", "ELU", "Activation", "Softmax")
# Layers measured even without weights or activation: pooling can amplify
# outputs to large values upstream of a dying layer (BRIEF.md, seed 000).
POOLING_MARKER = "Pooling"
# A ``histogram`` bucket count that keeps events small yet shapes readable;
# tf.summary.histogram's own default.
DEFAULT_BUCKETS = 30


@dataclass
class ProbedLayer:
    """One measured layer: its tag prefix, the layer, and what kind of layer it is."""

    path: str
    layer: keras.layers.Layer
    activation: str
    is_activation_layer: bool
    has_fused_activation: bool
    weights: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def layer_class(self) -> str:
        return type(self.layer).__name__


@dataclass(frozen=True)
class ProbeSettings:
    """Knobs of the measurement, fixed for a run."""

    tolerance: float
    step_unit: str
    buckets: int = DEFAULT_BUCKETS


def _children(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    # Keras 3 keeps direct sublayers in `_layers`; Sequential/Functional expose `.layers`.
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return []
    return [child for child in flatten(include_self=False, recursive=False)]


def _activation_name(layer: keras.layers.Layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return type(layer).__name__.lower() if type(layer).__name__ in ACTIVATION_LAYER_CLASSES else ""
    name = getattr(activation, "__name__", None) or type(activation).__name__
    return str(name).lower()


def _is_measured(layer: keras.layers.Layer) -> bool:
    name = type(layer).__name__
    if name == "InputLayer":
        return False
    if layer.weights or name in ACTIVATION_LAYER_CLASSES or POOLING_MARKER in name:
        return True
    return _activation_name(layer) not in ("", "linear")


def select_layers(model: keras.Model) -> list[ProbedLayer]:
    """The leaf layers of ``model`` to measure, each with its path in the model.

    A layer is measured when it has weights, is or fuses an activation, or is a
    pooling layer. Nested models contribute their layers under their own name.

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="relu")])
    >>> [p.path for p in select_layers(model)]
    ['dense']
    """
    selected: list[ProbedLayer] = []
    seen: set[int] = set()

    def visit(layer: keras.layers.Layer, prefix: str) -> None:
        for child in _children(layer):
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}{child.name}"
            grandchildren = _children(child)
            if grandchildren:
                visit(child, path + "/")
            elif _is_measured(child):
                activation = _activation_name(child)
                is_activation_layer = type(child).__name__ in ACTIVATION_LAYER_CLASSES
                selected.append(
                    ProbedLayer(
                        path=path,
                        layer=child,
                        activation=activation,
                        is_activation_layer=is_activation_layer,
                        has_fused_activation=(not is_activation_layer)
                        and activation not in ("", "linear"),
                        weights=_named_weights(child),
                    )
                )

    visit(model, "")
    return selected


def _named_weights(layer: keras.layers.Layer) -> list[tuple[str, Any]]:
    named: list[tuple[str, Any]] = []
    used: set[str] = set()
    for index, variable in enumerate(layer.trainable_weights):
        name = str(variable.name).split("/")[-1].split(":")[0] or f"weight_{index}"
        if name in used:
            name = f"{name}_{index}"
        used.add(name)
        named.append((name, variable))
    return named


@dataclass
class _Record:
    output: tf.Tensor | None = None
    preactivation: tf.Tensor | None = None


@contextlib.contextmanager
def _recording(layers: list[ProbedLayer], tape: tf.GradientTape) -> Iterator[dict[str, _Record]]:
    """Wrap each layer's ``call`` (and fused activation) to record and watch outputs.

    Restores every layer on exit, also when tracing fails.
    """
    records: dict[str, _Record] = {}
    restore: list[Callable[[], None]] = []

    def patch(obj: Any, name: str, value: Any) -> None:
        had = name in obj.__dict__
        old = obj.__dict__.get(name)
        object.__setattr__(obj, name, value)

        def undo() -> None:
            if had:
                object.__setattr__(obj, name, old)
            else:
                object.__delattr__(obj, name)

        restore.append(undo)

    for probed in layers:
        record = records.setdefault(probed.path, _Record())
        layer = probed.layer
        original_call = layer.call

        def recording_call(*args: Any, __call=original_call, __rec=record, __p=probed, **kwargs: Any) -> Any:
            if __p.is_activation_layer:
                inputs = args[0] if args else kwargs.get("inputs")
                if isinstance(inputs, tf.Tensor):
                    __rec.preactivation = inputs
            output = __call(*args, **kwargs)
            if __rec.output is None and isinstance(output, tf.Tensor) and output.dtype.is_floating:
                tape.watch(output)
                __rec.output = output
            return output

        patch(layer, "call", recording_call)
        if probed.has_fused_activation:
            original_activation = layer.activation

            def recording_activation(x: Any, *args: Any, __act=original_activation, __rec=record, **kwargs: Any) -> Any:
                if __rec.preactivation is None and isinstance(x, tf.Tensor):
                    __rec.preactivation = x
                return __act(x, *args, **kwargs)

            patch(layer, "activation", recording_activation)
    try:
        yield records
    finally:
        for undo in reversed(restore):
            undo()


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
    """Per-unit active fraction and max |output|, and the layer's dead/near-dead/zero fractions.

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
    active_fraction = tf.reduce_mean(tf.cast(per_sample_max > tolerance, tf.float32), axis=0)
    max_abs = tf.reduce_max(per_sample_max, axis=0)
    dead = tf.cast(max_abs == 0.0, tf.float32)
    near_dead = tf.cast((max_abs > 0.0) & (max_abs <= tolerance), tf.float32)
    return {
        "active_fraction": active_fraction,
        "max_abs": max_abs,
        "dead_fraction": tf.reduce_mean(dead),
        "near_dead_fraction": tf.reduce_mean(near_dead),
        "zero_fraction": tf.reduce_mean(tf.cast(by_unit == 0.0, tf.float32)),
    }


def histogram_tensors(values: list[tf.Tensor], buckets: int) -> tf.Tensor:
    """TensorBoard histogram tensors ``[len(values), buckets, (left, right, count)]``.

    Same layout and edge rules as ``tensorboard.plugins.histogram.summary_v2``
    (empty input: all zeros; one distinct value: zero-width buckets with the
    count in the last; edges ``linspace(min, max)``; float64 bucketing), with
    NaN/Inf left out. Built without ``tf.cond`` (TensorBoard's version costs
    ~0.15 s of tracing per histogram): tensors of one size are bucketed
    together as the rows of a matrix, and one ``bincount`` counts every
    histogram, NaN/Inf going to an overflow bin per histogram that is dropped.
    """
    bins = buckets + 1  # the last bin of each histogram collects NaN/Inf
    flats = [tf.reshape(tf.cast(_dense(v), tf.float64), [-1]) for v in values]
    groups: dict[object, list[int]] = {}
    for position, flat in enumerate(flats):
        # Tensors of one static size share ops; a dynamic size stands alone.
        key = flat.shape[0] if flat.shape[0] is not None else ("dynamic", position)
        groups.setdefault(key, []).append(position)
    inf = tf.constant(np.inf, tf.float64)
    zero = tf.constant(0.0, tf.float64)
    order, indices, lows, highs, sizes = [], [], [], [], []
    for members in groups.values():
        matrix = tf.stack([flats[m] for m in members])  # [histograms, values]
        finite = tf.math.is_finite(matrix)
        size = tf.reduce_sum(tf.cast(finite, tf.float64), axis=1)
        empty = tf.equal(size, 0.0)
        low = tf.where(empty, zero, tf.reduce_min(tf.where(finite, matrix, inf), axis=1))
        high = tf.where(empty, zero, tf.reduce_max(tf.where(finite, matrix, -inf), axis=1))
        spread = high - low
        width = tf.where(tf.equal(spread, 0.0), tf.ones_like(spread), spread / buckets)
        index = tf.cast(tf.floor((matrix - low[:, None]) / width[:, None]), tf.int32)
        index = tf.where(finite, tf.clip_by_value(index, 0, buckets - 1), buckets)
        offsets = tf.constant([[m * bins] for m in members], tf.int32)
        indices.append(tf.reshape(index + offsets, [-1]))
        order += members
        lows.append(low)
        highs.append(high)
        sizes.append(size)
    count = len(values)
    # Back from group order to the order of ``values``.
    restore = tf.constant(np.argsort(order), tf.int32)
    low, high, size = (tf.gather(tf.concat(parts, 0), restore) for parts in (lows, highs, sizes))
    spread = high - low
    binned = tf.math.bincount(tf.concat(indices, 0), minlength=count * bins, maxlength=count * bins, dtype=tf.float64)
    spread_counts = tf.reshape(binned, [count, bins])[:, :buckets]
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

    ``reached`` lists the layers whose output the forward pass reached.
    """

    reached: list[str] = field(default_factory=list)
    histogram_tags: list[str] = field(default_factory=list)
    scalar_tags: list[str] = field(default_factory=list)
    unit_tags: list[tuple[str, bytes]] = field(default_factory=list)  # (tag, UnitsMetadata bytes)


@dataclass
class _Collected:
    """What one trace of the probe measures, in writing order."""

    histograms: list[tuple[str, tf.Tensor]] = field(default_factory=list)
    scalars: list[tuple[str, tf.Tensor]] = field(default_factory=list)
    units: list[tuple[str, bytes, tf.Tensor]] = field(default_factory=list)

    def scalar(self, tag: str, value: tf.Tensor) -> None:
        self.scalars.append((tag, tf.cast(value, tf.float32)))


def build_probe_function(
    model: keras.Model,
    layers: list[ProbedLayer],
    loss_fn: Callable[..., tf.Tensor] | None,
    settings: ProbeSettings,
    previous_weights: dict[str, list[tf.Variable]],
) -> tuple[Callable[..., dict[str, Any]], ProbeLayout]:
    """One compiled function: forward, gradients, liveness, histograms, norms.

    The function returns ``histograms`` (``[m, buckets, 3]``), ``scalars``
    (``[s]``) and ``units`` (one ``[2, units]`` per layer), laid out as the
    :class:`ProbeLayout` returned beside it says, for :func:`write_probe`; and,
    for the live checks, ``dead_fraction`` and ``nonfinite`` (one value per
    layer, in ``layers`` order), ``measured`` (1.0 where a layer's output was
    reached) and ``loss``.
    """
    layout = ProbeLayout()
    metadata = {
        p.path: tags.UnitsMetadata(
            tolerance=settings.tolerance,
            step_unit=settings.step_unit,
            activation=p.activation,
            layer_class=p.layer_class,
        ).to_bytes()
        for p in layers
    }

    # autograph=False: the body branches on Python values only, and converting
    # every Keras call it traces costs seconds.
    @tf.function(reduce_retracing=True, autograph=False)
    def probe(x: Any, y: Any, sample_weight: Any) -> dict[str, Any]:
        with tf.GradientTape() as tape:
            with _recording(layers, tape) as records:
                y_pred = model(x, training=False)
            layout.reached[:] = [p.path for p in layers if records[p.path].output is not None]
            loss = loss_fn(y, y_pred, sample_weight) if loss_fn is not None else tf.constant(0.0)
        weight_sources = [v for p in layers for _, v in p.weights]
        output_sources = [records[p.path].output for p in layers if records[p.path].output is not None]
        gradients = (
            tape.gradient(
                loss,
                weight_sources + output_sources,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            if loss_fn is not None and (weight_sources or output_sources)
            else [tf.zeros_like(tf.convert_to_tensor(s)) for s in weight_sources + output_sources]
        )
        weight_grads = iter(gradients[: len(weight_sources)])
        output_grads = iter(gradients[len(weight_sources) :])

        collected = _Collected()
        collected.scalar(tags.PROBE_LOSS, loss)
        dead_fractions, nonfinite, measured = [], [], []
        for probed in layers:
            record = records[probed.path]
            grads = [next(weight_grads) for _ in probed.weights]
            if record.output is None:
                dead_fractions.append(tf.constant(0.0))
                nonfinite.append(tf.constant(0.0))
                measured.append(tf.constant(0.0))
                continue
            dead, bad = _measure_layer(
                probed, record, grads, next(output_grads), metadata[probed.path],
                previous_weights.get(probed.path, []), settings, collected,
            )
            dead_fractions.append(dead)
            nonfinite.append(bad)
            measured.append(tf.constant(1.0))
        layout.histogram_tags[:] = [tag for tag, _ in collected.histograms]
        layout.scalar_tags[:] = [tag for tag, _ in collected.scalars]
        layout.unit_tags[:] = [(tag, content) for tag, content, _ in collected.units]
        histograms = (
            histogram_tensors([values for _, values in collected.histograms], settings.buckets)
            if collected.histograms
            else tf.zeros([0, settings.buckets, 3], tf.float64)
        )
        return {
            "histograms": histograms,
            "scalars": tf.stack([value for _, value in collected.scalars]),
            "units": tuple(record for _, _, record in collected.units),
            "dead_fraction": tf.stack(dead_fractions) if dead_fractions else tf.zeros([0]),
            "nonfinite": tf.stack(nonfinite) if nonfinite else tf.zeros([0]),
            "measured": tf.stack(measured) if measured else tf.zeros([0]),
            "loss": tf.cast(loss, tf.float32),
        }

    return probe, layout


def _measure_layer(
    probed: ProbedLayer,
    record: _Record,
    weight_grads: list[tf.Tensor],
    output_grad: tf.Tensor,
    metadata: bytes,
    previous: list[tf.Variable],
    settings: ProbeSettings,
    collected: _Collected,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Add one layer's histograms, scalars and unit record to ``collected``.

    Returns (dead fraction, NaN/Inf count) for the live checks.
    """
    path = probed.path
    output = record.output
    liveness = unit_liveness(output, probed.layer, settings.tolerance)
    nonfinite_activations = _nonfinite_count(output)
    nonfinite_gradients = tf.add_n([_nonfinite_count(g) for g in [*weight_grads, output_grad]])

    histograms = collected.histograms
    histograms.append((tags.tag(path, tags.ACTIVATIONS), output))
    if record.preactivation is not None:
        histograms.append((tags.tag(path, tags.PREACTIVATIONS), record.preactivation))
    for (name, _), grad in zip(probed.weights, weight_grads):
        histograms.append((tags.gradient_tag(path, name), grad))
    histograms.append((tags.tag(path, tags.OUTPUT_GRADIENT), output_grad))
    histograms.append((tags.tag(path, tags.UNIT_ACTIVITY), liveness["active_fraction"]))
    collected.units.append(
        (tags.tag(path, tags.UNITS), metadata, tf.stack([liveness["active_fraction"], liveness["max_abs"]]))
    )
    collected.scalar(tags.tag(path, tags.DEAD_FRACTION), liveness["dead_fraction"])
    collected.scalar(tags.tag(path, tags.NEAR_DEAD_FRACTION), liveness["near_dead_fraction"])
    collected.scalar(tags.tag(path, tags.ZERO_FRACTION), liveness["zero_fraction"])
    collected.scalar(tags.tag(path, tags.OUTPUT_GRAD_NORM), _global_norm([output_grad]))
    collected.scalar(tags.tag(path, tags.NONFINITE_ACTIVATIONS), nonfinite_activations)
    collected.scalar(tags.tag(path, tags.NONFINITE_GRADIENTS), nonfinite_gradients)
    if probed.weights:
        values = [tf.cast(v, tf.float32) for _, v in probed.weights]
        weight_norm = _global_norm(values)
        collected.scalar(tags.tag(path, tags.GRAD_NORM), _global_norm(weight_grads))
        collected.scalar(tags.tag(path, tags.WEIGHT_NORM), weight_norm)
        if previous:
            change = _global_norm([v - tf.cast(p, tf.float32) for v, p in zip(values, previous)])
            collected.scalar(tags.tag(path, tags.UPDATE_RATIO), change / (weight_norm + 1e-12))
            for value, prev in zip(values, previous):
                prev.assign(tf.cast(value, prev.dtype))
    return liveness["dead_fraction"], nonfinite_activations + nonfinite_gradients


def write_probe(writer: Any, layout: ProbeLayout, result: dict[str, Any], step: int) -> None:
    """Write one probe's values as a single event, in TensorBoard's own formats.

    Histograms carry the ``histograms`` plugin metadata (``[buckets, 3]`` float64
    tensors, as ``tf.summary.histogram`` writes), scalars the ``scalars`` plugin
    (float32 scalar tensors, as ``tf.summary.scalar``), and per-unit records our
    plugin. ``writer`` is an :class:`keras_relu_doctor.events.writer.EventWriter`.
    """
    from keras_relu_doctor.events.writer import summary_metadata

    scalar_meta = summary_metadata(tags.SCALARS_PLUGIN)
    histogram_meta = summary_metadata(tags.HISTOGRAMS_PLUGIN)
    values = [(tag, scalar_meta, np.asarray(value, np.float32)) for tag, value in zip(layout.scalar_tags, result["scalars"])]
    values += [(tag, histogram_meta, buckets) for tag, buckets in zip(layout.histogram_tags, result["histograms"])]
    values += [
        (tag, summary_metadata(tags.PLUGIN_NAME, content), np.asarray(record, np.float32))
        for (tag, content), record in zip(layout.unit_tags, result["units"])
    ]
    writer.summaries(step, values)


def snapshot_weights(layers: list[ProbedLayer]) -> dict[str, list[tf.Variable]]:
    """Our own copies of each layer's trainable weights, for ``update_ratio``.

    Plain ``tf.Variable`` objects held by the callback: the model never sees them.
    """
    return {
        p.path: [tf.Variable(tf.cast(v, tf.float32), trainable=False) for _, v in p.weights]
        for p in layers
        if p.weights
    }


def to_numpy(result: dict[str, Any]) -> dict[str, Any]:
    """The probe's tensors as numpy arrays (``units`` stays a tuple of arrays)."""
    return {
        key: tuple(np.asarray(item) for item in value) if isinstance(value, tuple) else np.asarray(value)
        for key, value in result.items()
    }

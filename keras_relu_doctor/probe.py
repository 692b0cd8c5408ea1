"""In-graph measurements on the probe batch: which layers, what they output, and why.

The callback builds one ``tf.function`` per run from :func:`build_probe_function`:
a forward pass in inference mode that records every measured layer's output
(and the input of its activation), the gradients of the compiled loss with
respect to those outputs and to the trainable weights, the per-unit liveness,
and writes it all as TensorBoard summaries with the tags of :mod:`tags`.

Layer outputs are reached by wrapping, while the function is traced, each
measured layer's ``call`` (and its ``activation`` attribute, to see the
pre-activation of fused layers such as ``Dense(..., activation="relu")``). The
wrappers only observe: the traced graph computes exactly what ``model(x)`` does.
This reaches layers inside Sequential, Functional, nested and subclassed models
alike, as long as the model calls Keras layers.

Example (inside the callback)::

    layers = select_layers(model)
    probe = build_probe_function(model, layers, loss_fn, writer, settings)
    result = probe(x, y, sample_weight, tf.constant(step, tf.int64))
"""

from __future__ import annotations

import contextlib
import functools
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
    ~0.15 s of tracing per histogram) and counted with a single ``bincount``
    over all histograms of the probe: NaN/Inf go to an overflow bin per
    histogram that is dropped.
    """
    bins = buckets + 1  # the last bin of each histogram collects NaN/Inf
    indices, lows, highs, sizes = [], [], [], []
    for position, tensor in enumerate(values):
        data = tf.reshape(tf.cast(_dense(tensor), tf.float64), [-1])
        finite = tf.math.is_finite(data)
        size = tf.reduce_sum(tf.cast(finite, tf.float64))
        empty = tf.equal(size, 0.0)
        zero, one = tf.constant(0.0, tf.float64), tf.constant(1.0, tf.float64)
        low = tf.where(empty, zero, tf.reduce_min(tf.where(finite, data, np.inf)))
        high = tf.where(empty, zero, tf.reduce_max(tf.where(finite, data, -np.inf)))
        spread = high - low
        width = tf.where(tf.equal(spread, 0.0), one, spread / buckets)
        index = tf.clip_by_value(tf.cast(tf.floor((data - low) / width), tf.int32), 0, buckets - 1)
        indices.append(tf.where(finite, index, buckets) + position * bins)
        lows.append(low)
        highs.append(high)
        sizes.append(size)
    count = len(values)
    low, high, size = tf.stack(lows), tf.stack(highs), tf.stack(sizes)
    spread = high - low
    binned = tf.math.bincount(tf.concat(indices, 0), minlength=count * bins, maxlength=count * bins, dtype=tf.float64)
    spread_counts = tf.reshape(binned, [count, bins])[:, :buckets]
    single_counts = tf.one_hot(buckets - 1, buckets, dtype=tf.float64)[None, :] * size[:, None]
    counts = tf.where(tf.equal(spread, 0.0)[:, None], single_counts, spread_counts)
    fractions = tf.range(buckets, dtype=tf.float64) / buckets
    left = low[:, None] + spread[:, None] * fractions[None, :]
    right = tf.concat([left[:, 1:], high[:, None]], axis=1)
    return tf.stack([left, right, counts], axis=2)


@functools.lru_cache(maxsize=1)
def _histogram_metadata() -> bytes:
    from tensorboard.plugins.histogram import metadata as histogram_metadata

    return histogram_metadata.create_summary_metadata(display_name="", description="").SerializeToString()


def _write_histograms(requests: list[tuple[str, tf.Tensor]], buckets: int) -> None:
    if not requests:
        return
    histograms = histogram_tensors([values for _, values in requests], buckets)
    for index, (tag, _) in enumerate(requests):
        tf.summary.write(tag, histograms[index], metadata=_histogram_metadata())


def _global_norm(tensors: list[tf.Tensor]) -> tf.Tensor:
    squares = []
    for tensor in tensors:
        values = tf.cast(_dense(tensor), tf.float32)
        squares.append(tf.reduce_sum(tf.where(tf.math.is_finite(values), tf.square(values), 0.0)))
    return tf.sqrt(tf.add_n(squares)) if squares else tf.constant(0.0)


def units_metadata_bytes(probed: ProbedLayer, settings: ProbeSettings) -> bytes:
    """Serialized ``SummaryMetadata`` marking a ``<layer>/units`` record (see tags.py)."""
    from tensorboard.compat.proto import summary_pb2

    content = tags.UnitsMetadata(
        tolerance=settings.tolerance,
        step_unit=settings.step_unit,
        activation=probed.activation,
        layer_class=probed.layer_class,
    ).to_bytes()
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=tags.PLUGIN_NAME, content=content),
        summary_description="Per-unit liveness on the probe batch: rows active_fraction, max_abs_output.",
    )
    return metadata.SerializeToString()


def build_probe_function(
    model: keras.Model,
    layers: list[ProbedLayer],
    loss_fn: Callable[..., tf.Tensor] | None,
    writer: tf.summary.SummaryWriter,
    settings: ProbeSettings,
    previous_weights: dict[str, list[tf.Variable]],
) -> tuple[Callable[..., dict[str, tf.Tensor]], list[str]]:
    """One compiled function: forward, gradients, liveness, and the summary writes.

    The function returns a dict of small tensors for the live checks:
    ``dead_fraction`` and ``nonfinite`` (one value per layer, in ``layers``
    order), ``measured`` (1.0 where a layer's output was reached) and ``loss``.
    The list returned beside it fills, when the function is traced, with the
    paths of the layers whose output the forward pass reached.
    """
    reached: list[str] = []
    metadata = {p.path: units_metadata_bytes(p, settings) for p in layers}
    buckets = settings.buckets

    # autograph=False: the body branches on Python values only, and converting
    # every Keras call it traces costs seconds.
    @tf.function(reduce_retracing=True, autograph=False)
    def probe(x: Any, y: Any, sample_weight: Any, step: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            with _recording(layers, tape) as records:
                y_pred = model(x, training=False)
            reached[:] = [p.path for p in layers if records[p.path].output is not None]
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

        dead_fractions, nonfinite, measured = [], [], []
        histograms: list[tuple[str, tf.Tensor]] = []
        with writer.as_default(step=step):
            tf.summary.scalar(tags.PROBE_LOSS, tf.cast(loss, tf.float32))
            for probed in layers:
                record = records[probed.path]
                grads = [next(weight_grads) for _ in probed.weights]
                if record.output is None:
                    dead_fractions.append(tf.constant(0.0))
                    nonfinite.append(tf.constant(0.0))
                    measured.append(tf.constant(0.0))
                    continue
                output_grad = next(output_grads)
                dead, bad = _write_layer(probed, record, grads, output_grad, metadata[probed.path],
                                         previous_weights.get(probed.path, []), settings, histograms)
                dead_fractions.append(dead)
                nonfinite.append(bad)
                measured.append(tf.constant(1.0))
            _write_histograms(histograms, buckets)
        return {
            "dead_fraction": tf.stack(dead_fractions) if dead_fractions else tf.zeros([0]),
            "nonfinite": tf.stack(nonfinite) if nonfinite else tf.zeros([0]),
            "measured": tf.stack(measured) if measured else tf.zeros([0]),
            "loss": tf.cast(loss, tf.float32),
        }

    return probe, reached


def _write_layer(
    probed: ProbedLayer,
    record: _Record,
    weight_grads: list[tf.Tensor],
    output_grad: tf.Tensor,
    metadata: bytes,
    previous: list[tf.Variable],
    settings: ProbeSettings,
    histograms: list[tuple[str, tf.Tensor]],
) -> tuple[tf.Tensor, tf.Tensor]:
    """Scalar and unit summaries of one layer (inside the probe's writer scope).

    Appends the layer's histogram requests to ``histograms``, written together
    afterwards; returns (dead fraction, NaN/Inf count).
    """
    path = probed.path
    output = record.output
    liveness = unit_liveness(output, probed.layer, settings.tolerance)
    nonfinite_activations = _nonfinite_count(output)
    nonfinite_gradients = tf.add_n([_nonfinite_count(g) for g in [*weight_grads, output_grad]])

    histograms.append((tags.tag(path, tags.ACTIVATIONS), output))
    if record.preactivation is not None:
        histograms.append((tags.tag(path, tags.PREACTIVATIONS), record.preactivation))
    for (name, _), grad in zip(probed.weights, weight_grads):
        histograms.append((tags.gradient_tag(path, name), grad))
    histograms.append((tags.tag(path, tags.OUTPUT_GRADIENT), output_grad))
    histograms.append((tags.tag(path, tags.UNIT_ACTIVITY), liveness["active_fraction"]))
    tf.summary.write(
        tags.tag(path, tags.UNITS),
        tf.stack([liveness["active_fraction"], liveness["max_abs"]]),
        metadata=metadata,
    )
    tf.summary.scalar(tags.tag(path, tags.DEAD_FRACTION), liveness["dead_fraction"])
    tf.summary.scalar(tags.tag(path, tags.NEAR_DEAD_FRACTION), liveness["near_dead_fraction"])
    tf.summary.scalar(tags.tag(path, tags.ZERO_FRACTION), liveness["zero_fraction"])
    tf.summary.scalar(tags.tag(path, tags.OUTPUT_GRAD_NORM), _global_norm([output_grad]))
    tf.summary.scalar(tags.tag(path, tags.NONFINITE_ACTIVATIONS), nonfinite_activations)
    tf.summary.scalar(tags.tag(path, tags.NONFINITE_GRADIENTS), nonfinite_gradients)
    if probed.weights:
        values = [tf.cast(v, tf.float32) for _, v in probed.weights]
        weight_norm = _global_norm(values)
        tf.summary.scalar(tags.tag(path, tags.GRAD_NORM), _global_norm(weight_grads))
        tf.summary.scalar(tags.tag(path, tags.WEIGHT_NORM), weight_norm)
        if previous:
            change = _global_norm([v - tf.cast(p, tf.float32) for v, p in zip(values, previous)])
            tf.summary.scalar(tags.tag(path, tags.UPDATE_RATIO), change / (weight_norm + 1e-12))
            for value, prev in zip(values, previous):
                prev.assign(tf.cast(value, prev.dtype))
    return liveness["dead_fraction"], nonfinite_activations + nonfinite_gradients


def snapshot_weights(layers: list[ProbedLayer]) -> dict[str, list[tf.Variable]]:
    """Our own copies of each layer's trainable weights, for ``update_ratio``.

    Plain ``tf.Variable`` objects held by the callback: the model never sees them.
    """
    return {
        p.path: [tf.Variable(tf.cast(v, tf.float32), trainable=False) for _, v in p.weights]
        for p in layers
        if p.weights
    }


def to_numpy(result: dict[str, tf.Tensor]) -> dict[str, np.ndarray]:
    return {key: np.asarray(value) for key, value in result.items()}

"""What every backend's probe shares: its settings, the layout of its values, and how they are written.

A probe (:class:`Probe`, one per Keras backend) runs the model on the probe
batch and returns plain numpy arrays: ``histograms`` (``[m, buckets, 3]``),
``scalars`` (``[s]``) and ``units`` (one ``[3, units]`` record per layer),
whose tags the :class:`ProbeLayout` lists in the same order, plus the values
the callback's live checks read (``dead_fraction``, ``nonfinite``,
``measured``, ``loss``). :func:`write_probe` turns them into one event. Every
backend fills the layout the same way (:func:`fill_layout`), so the event
files do not say which backend wrote them.

>>> settings = ProbeSettings(tolerance=1e-6, step_unit="epoch")
>>> settings.buckets, settings.mode
(30, 'training')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Protocol

import keras
import numpy as np

from keras_relu_doctor import tags
from keras_relu_doctor.probe.layers import LayerEntry
from keras_relu_doctor.probe.recording import Record, Trace
from keras_relu_doctor.tags import REASON_NOT_FLOAT, REASON_NOT_REACHED

DEFAULT_BUCKETS = tags.DEFAULT_BUCKETS
# Values bucketed per histogram at most, drawn over the whole tensor (totals
# count them all; an activation's edges are its exact range): a share of the
# histogram estimated from 2**13 values has a standard error of at most 0.55
# points (within 2 points of the whole tensor's; a test checks), while a conv
# layer's output on a probe of a few hundred images holds millions. Bucketing
# was most of a log on CNNs, so the sample is as small as that allows.
HISTOGRAM_SAMPLE = 2**13


def sample_positions(length: int, sample_size: int = HISTOGRAM_SAMPLE) -> np.ndarray | None:
    """The sorted indices of the sample of a tensor of ``length`` values; None when it is kept whole.

    Drawn at random without replacement, seeded with ``length``: the same for
    every tensor of that size, on every backend. An evenly strided sample would
    line up with the tensor's unit axis whenever the stride shares a factor
    with it (every 2.5th value of a 2048x10 kernel falls in 4 of its 10
    columns), and miss the other units altogether; a random one sees every
    unit in proportion.

    >>> sample_positions(10, 4).tolist(), sample_positions(4, 4)
    ([2, 5, 7, 9], None)
    """
    if length <= sample_size:
        return None
    return _random_positions(length, sample_size)


@functools.lru_cache(maxsize=512)
def _random_positions(length: int, sample_size: int) -> np.ndarray:
    chosen = np.sort(np.random.default_rng(length).choice(length, sample_size, replace=False))
    chosen = chosen.astype(np.int32 if length < 2**31 else np.int64)
    chosen.flags.writeable = False  # shared by every caller
    return chosen
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
    # Samples of the probe the gradients are taken on (the first ones); None: all.
    gradient_samples: int | None = None


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


class Probe(Protocol):
    """One backend's compiled measurement of a model on the probe batch.

    ``build`` compiles (or traces) it for the batch and fills ``layout``;
    calling it measures once and returns numpy arrays laid out as ``layout``
    says (see the module docstring).
    """

    layout: ProbeLayout

    def build(self, x: Any, y: Any, sample_weight: Any) -> None: ...

    def __call__(self, x: Any, y: Any, sample_weight: Any) -> dict[str, Any]: ...

    def release(self) -> None:
        """Free what the compiled measurement holds, now that it is no longer called."""
        ...


def new_layout(entries: list[LayerEntry], settings: ProbeSettings, *, gradients: bool) -> ProbeLayout:
    """An empty layout with each measured layer's per-unit record metadata."""
    layout = ProbeLayout(gradients=gradients)
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
            for entry in entries
            if entry.measured
        }
    )
    return layout


def _not_measured_reason(record: Record) -> str:
    return REASON_NOT_FLOAT if record.called and not record.float_output else REASON_NOT_REACHED


def fill_layout(layout: ProbeLayout, entries: list[LayerEntry], trace: Trace, y_pred: Any) -> None:
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
        int(tensor.shape[-1]) if len(tensor.shape) and tensor.shape[-1] is not None else None for _, tensor in heads
    ]


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

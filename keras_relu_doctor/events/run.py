"""Read the event files of one run into series, streaming record by record.

>>> import tempfile
>>> run = read_run(tempfile.mkdtemp(), [])
>>> run.records, run.layers
(0, ())
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2

from keras_relu_doctor.errors import UnreadableEventFile
from keras_relu_doctor.events.framing import iter_records
from keras_relu_doctor.events.histograms import STAT_NAMES, bucket_stats, legacy_buckets, pad_and_stack
from keras_relu_doctor.events.series import HistogramSeries, Run, ScalarSeries, UnitsSeries
from keras_relu_doctor.events.tensors import tensor_to_array
from keras_relu_doctor.tags import (
    HISTOGRAMS_PLUGIN,
    PLUGIN_NAME,
    SCALARS_PLUGIN,
    UNIT_ROWS,
    UNITS,
    UnitsMetadata,
    parse_tag,
)

# Histograms are reduced to statistics in batches of this many per tag, so
# numpy's per-call cost is paid once per batch and memory stays bounded.
HISTOGRAM_BATCH = 64
_EXACT_NONE = (np.nan,) * 5


def _keep_last_per_step(steps: np.ndarray) -> np.ndarray:
    """Indices that sort ``steps`` and keep, for a repeated step, the last one written."""
    order = np.argsort(steps, kind="stable")
    sorted_steps = steps[order]
    is_last = np.append(sorted_steps[1:] != sorted_steps[:-1], True)
    return order[is_last]


class _Scalars:
    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")

    def add(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)

    def finish(self) -> ScalarSeries:
        steps = np.frombuffer(self.steps, dtype=np.int64) if self.steps else np.zeros(0, np.int64)
        values = np.frombuffer(self.values, dtype=np.float64) if self.values else np.zeros(0)
        keep = _keep_last_per_step(steps)
        return ScalarSeries(steps=steps[keep].copy(), values=values[keep].copy())


class _Histograms:
    def __init__(self) -> None:
        self.steps = array("q")
        self.pending: list[np.ndarray] = []
        self.pending_exact: list[tuple[float, ...]] = []
        self.reduced: list[dict[str, np.ndarray]] = []

    def add(self, step: int, buckets: np.ndarray, exact: tuple[float, ...] = _EXACT_NONE) -> None:
        self.steps.append(step)
        self.pending.append(buckets)
        self.pending_exact.append(exact)
        if len(self.pending) >= HISTOGRAM_BATCH:
            self._reduce()

    def _reduce(self) -> None:
        stats = bucket_stats(pad_and_stack(self.pending))
        # Legacy protos carry exact min, max, count and moments: prefer them.
        exact = np.array(self.pending_exact, dtype=np.float64)
        has_exact = ~np.isnan(exact[:, 2])
        if has_exact.any():
            count = np.where(has_exact, exact[:, 2], stats["count"])
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(has_exact, exact[:, 3] / count, stats["mean"])
                variance = np.maximum(exact[:, 4] / count - mean**2, 0.0)
            stats["min"] = np.where(has_exact, exact[:, 0], stats["min"])
            stats["max"] = np.where(has_exact, exact[:, 1], stats["max"])
            stats["count"], stats["mean"] = count, mean
            stats["std"] = np.where(has_exact, np.sqrt(variance), stats["std"])
            stats["sum_squares"] = np.where(has_exact, exact[:, 4], stats["sum_squares"])
        self.reduced.append(stats)
        self.pending, self.pending_exact = [], []

    def finish(self) -> HistogramSeries:
        if self.pending:
            self._reduce()
        steps = np.frombuffer(self.steps, dtype=np.int64)
        keep = _keep_last_per_step(steps)
        columns = {name: np.concatenate([part[name] for part in self.reduced])[keep] for name in STAT_NAMES}
        return HistogramSeries(steps=steps[keep].copy(), **columns)


@dataclass
class _Units:
    metadata: UnitsMetadata
    steps: list[int] = field(default_factory=list)
    records: list[np.ndarray] = field(default_factory=list)

    def finish(self) -> UnitsSeries:
        steps = np.asarray(self.steps, dtype=np.int64)
        keep = _keep_last_per_step(steps)
        stacked = np.stack(self.records)[keep].astype(np.float32)
        rows = {name: index for index, name in enumerate(self.metadata.rows)}
        return UnitsSeries(
            steps=steps[keep],
            active_fraction=stacked[:, rows["active_fraction"], :],
            max_abs_output=stacked[:, rows["max_abs_output"], :],
            metadata=self.metadata,
        )


def _plugin_by_tag(tag: str, tensor) -> str:
    """The plugin of a tensor whose metadata was lost with a damaged first record."""
    if not tensor.tensor_shape.dim:
        return SCALARS_PLUGIN
    parsed = parse_tag(tag)
    if parsed is None:
        return ""
    if parsed[1] == UNITS:
        return PLUGIN_NAME
    return HISTOGRAMS_PLUGIN if len(tensor.tensor_shape.dim) == 2 else ""


class _RunReader:
    """Dispatches each summary value to the accumulator of its tag."""

    def __init__(self) -> None:
        self.scalars: dict[str, _Scalars] = {}
        self.histograms: dict[str, _Histograms] = {}
        self.units: dict[str, _Units] = {}
        self.layers: dict[str, None] = {}
        # Plugin metadata is written with a tag's first value only.
        self.plugins: dict[str, tuple[str, bytes]] = {}
        self.warnings: list[str] = []
        self.records = 0

    def read_file(self, path: str, name: str) -> tuple[int | None, int]:
        """Read one file; return the offset where it ends early (or None) and its record count."""
        try:
            size = os.path.getsize(path)
            stream = open(path, "rb")
        except OSError as error:
            raise UnreadableEventFile(
                f"cannot open event file {name!r} ({error.strerror}): check its permissions"
            ) from None
        with stream:
            records, notes = iter_records(stream, name, size)
            read = 0
            for record in records:
                try:
                    event = event_pb2.Event.FromString(record.payload)
                    if event.HasField("summary"):
                        self._event(event)
                except (DecodeError, ValueError, TypeError, KeyError, IndexError, RuntimeWarning) as error:
                    self.warnings.append(
                        f"{name}: record at offset {record.offset} does not parse ({type(error).__name__}); skipped it"
                    )
                    continue
                read += 1
        self.warnings.extend(notes.skipped)
        self.records += read
        return notes.truncated_at, read

    def _event(self, event) -> None:
        step = event.step
        for value in event.summary.value:
            tag = value.tag
            if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                plugin_data = value.metadata.plugin_data
                self.plugins[tag] = (plugin_data.plugin_name, plugin_data.content)
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                self._scalar(tag, step, value.simple_value)
            elif kind == "histo":
                buckets, exact = legacy_buckets(value.histo)
                self._histogram(tag, step, buckets, exact)
            elif kind == "tensor":
                self._tensor(tag, step, value.tensor)

    def _tensor(self, tag: str, step: int, tensor) -> None:
        plugin, content = self.plugins.get(tag, ("", b""))
        if not plugin:
            plugin = _plugin_by_tag(tag, tensor)
        if plugin == SCALARS_PLUGIN:
            values = tensor_to_array(tensor)
            if values.size == 1 and values.dtype != object:
                self._scalar(tag, step, float(values.reshape(())))
        elif plugin == HISTOGRAMS_PLUGIN:
            buckets = tensor_to_array(tensor).astype(np.float64)
            if buckets.ndim != 2 or buckets.shape[1] != 3:
                raise ValueError(f"histogram tensor of shape {buckets.shape}")
            self._histogram(tag, step, buckets)
        elif plugin == PLUGIN_NAME:
            parsed = parse_tag(tag)
            if parsed and parsed[1] == UNITS:
                self._units(parsed[0], step, tensor_to_array(tensor), content)

    def _scalar(self, tag: str, step: int, value: float) -> None:
        self._note_layer(tag)
        self.scalars.setdefault(tag, _Scalars()).add(step, value)

    def _histogram(self, tag: str, step: int, buckets: np.ndarray, exact: tuple[float, ...] = _EXACT_NONE) -> None:
        self._note_layer(tag)
        self.histograms.setdefault(tag, _Histograms()).add(step, buckets, exact)

    def _units(self, layer: str, step: int, record: np.ndarray, content: bytes) -> None:
        accumulator = self.units.get(layer)
        if accumulator is None:
            metadata = UnitsMetadata.from_bytes(content) if content else UnitsMetadata(1e-6, "epoch")
            if "max_abs_output" not in metadata.rows or "active_fraction" not in metadata.rows:
                raise ValueError(f"per-unit record rows {metadata.rows} lack {UNIT_ROWS}")
            accumulator = self.units[layer] = _Units(metadata)
        expected_rows = len(accumulator.metadata.rows)
        if record.ndim != 2 or record.shape[0] != expected_rows:
            raise ValueError(f"per-unit record of shape {record.shape}")
        if accumulator.records and record.shape != accumulator.records[0].shape:
            raise ValueError(f"per-unit record of shape {record.shape} after {accumulator.records[0].shape}")
        self.layers.setdefault(layer, None)
        accumulator.steps.append(step)
        accumulator.records.append(record)

    def _note_layer(self, tag: str) -> None:
        parsed = parse_tag(tag)
        if parsed:
            self.layers.setdefault(parsed[0], None)

    def finish(self, path: str, files: tuple[str, ...], truncated: tuple[str, ...]) -> Run:
        return Run(
            path=path,
            scalars={tag: series.finish() for tag, series in self.scalars.items()},
            histograms={tag: series.finish() for tag, series in self.histograms.items()},
            units={layer: series.finish() for layer, series in self.units.items()},
            layers=tuple(self.layers),
            files=files,
            truncated_files=truncated,
            warnings=tuple(self.warnings),
            records=self.records,
        )


def read_run(folder: str, files: list[str], run_path: str = ".") -> Run:
    """Read ``files`` (names inside ``folder``, already in order) as one run.

    A file that ends early is read up to its last whole record; a damaged
    record is skipped. Both are noted in ``Run.warnings``.
    """
    reader = _RunReader()
    truncated: list[str] = []
    for name in files:
        shown = os.path.normpath(os.path.join(run_path, name))
        ends_at, read = reader.read_file(os.path.join(folder, name), shown)
        if ends_at is not None:
            truncated.append(shown)
            reader.warnings.append(
                f"{shown} ends early at offset {ends_at} (training stopped mid-write or is still"
                f" writing): read the {read} whole records before it"
            )
    return reader.finish(run_path, tuple(files), tuple(truncated))

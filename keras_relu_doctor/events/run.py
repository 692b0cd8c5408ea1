"""Read the event files of one run into series, streaming record by record.

>>> import tempfile
>>> run = read_run(tempfile.mkdtemp(), [])
>>> run.records, run.layers
(0, ())
"""

from __future__ import annotations

import dataclasses
import os
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2

from keras_relu_doctor.errors import UnreadableEventFile
from keras_relu_doctor.events.framing import iter_batches
from keras_relu_doctor.events.histograms import STAT_NAMES, bucket_stats, legacy_buckets, pad_and_stack
from keras_relu_doctor.events.series import HistogramSeries, Run, ScalarSeries, UnitsSeries
from keras_relu_doctor.events.storage import LOCAL, FileInfo, Storage
from keras_relu_doctor.events.tensors import tensor_to_array
from keras_relu_doctor.tags import (
    HISTOGRAMS_PLUGIN,
    MODEL_FACTS,
    PLUGIN_NAME,
    SCALARS_PLUGIN,
    REQUIRED_UNIT_ROWS,
    UNIT_ROWS,
    UNITS,
    UnitsMetadata,
    decode_facts,
    parse_tag,
)

# Histograms are reduced to statistics in batches of this many per tag, so
# numpy's per-call cost is paid once per batch and memory stays bounded.
HISTOGRAM_BATCH = 128
_EXACT_NONE = (np.nan,) * 5
# Per-unit record layouts by row count, for records whose metadata was lost.
_ROWS_BY_COUNT = {len(REQUIRED_UNIT_ROWS): REQUIRED_UNIT_ROWS, len(UNIT_ROWS): UNIT_ROWS}
_DT_FLOAT, _DT_DOUBLE = 1, 2  # tensorboard/compat/proto/types.proto
# What a well-framed value with unexpected contents raises while it is read.
_VALUE_ERRORS = (ValueError, TypeError, KeyError, IndexError, RuntimeWarning, UnicodeDecodeError)


def _ignore(step: int, value: Any) -> None:
    """Sink of tags the report does not read (images, text, ...)."""


def _keep_last_per_step(steps: np.ndarray) -> np.ndarray:
    """Indices that sort ``steps`` and keep, for a repeated step, the last one written."""
    if steps.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(steps, kind="stable")
    sorted_steps = steps[order]
    is_last = np.append(sorted_steps[1:] != sorted_steps[:-1], True)
    return order[is_last]


class _Scalars:
    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")
        # float32 tensors' bytes, in the order of steps not yet in ``values``: one bytes append per
        # value on the fast path, decoded in one call when anything else comes or at the end.
        self.float32s = bytearray()

    def add(self, step: int, value: float) -> None:
        self._decode()
        self.steps.append(step)
        self.values.append(value)

    def add_simple(self, step: int, value) -> None:
        self.add(step, value.simple_value)

    def add_value(self, step: int, value) -> None:
        tensor = value.tensor
        content = tensor.tensor_content
        if len(content) == 4 and tensor.dtype == _DT_FLOAT:
            self.steps.append(step)
            self.float32s += content
            return
        values = tensor_to_array(tensor)
        if values.size == 1 and values.dtype != object:
            self.add(step, float(values.reshape(())))

    def _decode(self) -> None:
        if self.float32s:
            self.values.extend(np.frombuffer(self.float32s, dtype="<f4").astype(np.float64).tolist())
            self.float32s = bytearray()

    def finish(self) -> ScalarSeries:
        self._decode()
        steps = np.frombuffer(self.steps, dtype=np.int64) if self.steps else np.zeros(0, np.int64)
        values = np.frombuffer(self.values, dtype=np.float64) if self.values else np.zeros(0)
        keep = _keep_last_per_step(steps)
        return ScalarSeries(steps=steps[keep].copy(), values=values[keep].copy())


class _Histograms:
    def __init__(self) -> None:
        self.checked_length = -1  # tensor_content length of the last [k, 3] float64 tensor checked
        self.steps = array("q")
        self.pending: list[np.ndarray] = []
        self.pending_exact: list[tuple[float, ...]] = []
        self.reduced: list[dict[str, np.ndarray]] = []

    def add(self, step: int, buckets: np.ndarray | bytes, exact: tuple[float, ...] = _EXACT_NONE) -> None:
        """Add ``[k, 3]`` buckets, or their float64 little-endian bytes (decoded per batch)."""
        self.steps.append(step)
        self.pending.append(buckets)
        self.pending_exact.append(exact)
        if len(self.pending) >= HISTOGRAM_BATCH:
            self._reduce()

    def add_histo(self, step: int, value) -> None:
        self.add(step, *legacy_buckets(value.histo))

    def add_value(self, step: int, value) -> None:
        tensor = value.tensor
        content = tensor.tensor_content
        # A tag's histograms keep their bucket count: once a [k, 3] float64 tensor has been
        # checked, the next of the same byte length and type needs no look at its shape.
        if len(content) != self.checked_length or tensor.dtype != _DT_DOUBLE:
            dims = tensor.tensor_shape.dim
            if not (tensor.dtype == _DT_DOUBLE and len(dims) == 2 and dims[1].size == 3 and len(content) == 24 * dims[0].size):
                buckets = tensor_to_array(tensor).astype(np.float64)
                if buckets.ndim != 2 or buckets.shape[1] != 3:
                    raise ValueError(f"histogram tensor of shape {buckets.shape}")
                self.add(step, buckets)
                return
            self.checked_length = len(content)
        self.add(step, content)

    def _decoded(self) -> np.ndarray:
        if all(isinstance(item, bytes) for item in self.pending) and len({len(item) for item in self.pending}) == 1:
            return np.frombuffer(b"".join(self.pending), dtype="<f8").reshape(len(self.pending), -1, 3)
        items = [np.frombuffer(item, "<f8").reshape(-1, 3) if isinstance(item, bytes) else item for item in self.pending]
        return pad_and_stack(items)

    def _reduce(self) -> None:
        stats = bucket_stats(self._decoded())
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
    records: list[bytes] = field(default_factory=list)
    units: int | None = None
    checked_length: int = -1  # tensor_content length of the last record whose shape was checked

    def add_value(self, step: int, value) -> None:
        tensor = value.tensor
        content = tensor.tensor_content
        if len(content) == self.checked_length and tensor.dtype == _DT_FLOAT:
            # One layer's records keep their shape: the same byte length as the last checked one.
            self.steps.append(step)
            self.records.append(content)
            return
        dims = tensor.tensor_shape.dim
        shape = (dims[0].size, dims[1].size) if len(dims) == 2 else tuple(dim.size for dim in dims)
        rows = len(self.metadata.rows)
        if len(shape) == 2 and shape[0] != rows and not self.metadata.rows and shape[0] in _ROWS_BY_COUNT:
            # The metadata was lost with a damaged first record: the row count tells the layout.
            self.metadata = dataclasses.replace(self.metadata, rows=_ROWS_BY_COUNT[shape[0]])
            rows = len(self.metadata.rows)
        if len(shape) != 2 or shape[0] != rows or (self.units is not None and shape[1] != self.units):
            raise ValueError(f"per-unit record of shape {shape}, expected ({rows}, {self.units or 'units'})")
        if tensor.dtype != _DT_FLOAT or len(content) != 4 * rows * shape[1]:
            content = tensor_to_array(tensor).astype("<f4").tobytes()
        else:
            self.checked_length = len(content)
        self.units = shape[1]
        self.steps.append(step)
        self.records.append(content)

    def finish(self) -> UnitsSeries:
        steps = np.asarray(self.steps, dtype=np.int64)
        keep = _keep_last_per_step(steps)
        rows = len(self.metadata.rows)
        stacked = np.frombuffer(b"".join(self.records), dtype="<f4").reshape(len(self.records), rows, -1)[keep]
        index = {name: position for position, name in enumerate(self.metadata.rows)}
        return UnitsSeries(
            steps=steps[keep],
            active_fraction=stacked[:, index["active_fraction"], :].astype(np.float32),
            max_abs_output=stacked[:, index["max_abs_output"], :].astype(np.float32),
            metadata=self.metadata,
            output_range=stacked[:, index["output_range"], :].astype(np.float32) if "output_range" in index else None,
        )


class _Facts:
    """The model facts records, one per ``fit``, in the order written."""

    def __init__(self) -> None:
        self.records: list[tuple[int, dict]] = []

    def add_value(self, step: int, value) -> None:
        values = tensor_to_array(value.tensor)
        if values.dtype != object or values.size != 1:
            raise ValueError(f"model facts tensor of shape {values.shape} and dtype {values.dtype}")
        self.records.append((step, decode_facts(bytes(values.reshape(-1)[0]))))


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
        self.facts = _Facts()
        self.layers: dict[str, None] = {}
        self.formats: set[str] = set()  # proto fields seen: tensor (TF2), simple_value / histo (TF1, tensorboardX)
        # Plugin metadata may come with a tag's first value only, so the first
        # value decides where all of the tag's values go.
        self.sinks: dict[str, Callable[[int, Any], None]] = {}
        self.warnings: list[str] = []
        self.records = 0
        # How each tag's values are filed, decided by its first value: (proto field, plugin, plugin content).
        self.decisions: dict[str, tuple[str, str, bytes]] = {}
        self.deciders: dict[str, bytes] | None = None  # with keep_deciders: each deciding value, serialised

    def keep_deciders(self) -> None:
        """Keep the value that decided each tag's sink, for :meth:`prime` of another reader."""
        self.deciders = {}

    def prime(self, deciders: dict[str, bytes]) -> None:
        """Decide each tag's sink as a reader that already saw ``deciders`` would have, filing no value.

        A reader of a later part of a file is primed with what a reader of its
        start saw, so the tags whose first value carried the metadata are filed alike.
        """
        from tensorboard.compat.proto import summary_pb2

        for tag, raw in deciders.items():
            try:
                self._sink(tag, summary_pb2.Summary.Value.FromString(raw))
            except _VALUE_ERRORS:
                continue

    def read_file(
        self,
        path: str,
        name: str,
        storage: Storage = LOCAL,
        start: int = 0,
        info: FileInfo | None = None,
        stop: int | None = None,
        notes_out: list | None = None,
    ) -> tuple[int | None, int, int]:
        """Read one file from offset ``start`` (a record boundary).

        Returns the offset where it ends early (or None), the records read, and
        the offset after the last whole record, where a read of the grown file
        resumes. ``info``, when already known, saves asking the storage again.
        With ``stop``, only the records starting in ``[start, stop)`` are read,
        ``start`` need not be a record boundary (the first header whose CRC
        holds is looked for), and the framing notes go to ``notes_out`` (one
        :class:`FramingNotes`) instead of the warnings.
        """
        info = info or storage.info(path)
        if info.problem:
            # A symlink loop, or a link to nothing: not an event file to read.
            self.warnings.append(f"{name}: {info.problem}; skipped it")
            return None, 0, start
        if not info.regular:
            # Opening a FIFO waits for a writer forever; /dev/zero never ends.
            self.warnings.append(f"{name}: not a regular file (a FIFO, device or socket); skipped it")
            return None, 0, start
        try:
            size = info.size
            stream = storage.open(path)
            if start:
                stream.seek(start)
        except OSError as error:
            raise UnreadableEventFile(
                f"cannot open event file {name!r} ({error.strerror or type(error).__name__}): check its permissions"
            ) from None
        with stream:
            batches, notes = iter_batches(stream, name, size, start, stop, find_start=stop is not None and start > 0)
            read = 0
            parse, sinks, new_sink = event_pb2.Event.FromString, self.sinks, self._sink
            for offsets, payloads in batches:
                read += len(offsets)
                # One event, one value: the inner loop runs once per record, so it is kept inline.
                for offset, payload in zip(offsets, payloads):
                    try:
                        event = parse(payload)
                    except (DecodeError, RuntimeWarning, UnicodeDecodeError) as error:
                        self.warnings.append(
                            f"{name}: record at offset {offset} does not parse ({type(error).__name__}); skipped it"
                        )
                        read -= 1
                        continue
                    step = event.step
                    unread = None
                    for value in event.summary.value:
                        tag = value.tag
                        try:
                            sink = sinks.get(tag)
                            if sink is None:
                                sink = new_sink(tag, value)
                            sink(step, value)
                        except _VALUE_ERRORS as error:
                            unread = unread or []
                            unread.append((tag, type(error).__name__))
                    if unread:
                        tags = ", ".join(f"{tag!r} ({error})" for tag, error in unread[:3])
                        more = f" and {len(unread) - 3} more" if len(unread) > 3 else ""
                        self.warnings.append(
                            f"{name}: record at offset {offset}: could not read the value of {tags}{more};"
                            " skipped those, kept the record's other values"
                        )
        if notes_out is not None:
            notes_out.append(notes)
        else:
            self.warnings.extend(notes.skipped)
        self.records += read
        return notes.truncated_at, read, notes.end

    def _sink(self, tag: str, value) -> Callable[[int, Any], None]:
        """The function that files every later value of ``tag`` (raises if the value's metadata is bad)."""
        kind = value.WhichOneof("value")
        self.formats.add(str(kind))
        plugin, content = "", b""
        if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
            plugin, content = value.metadata.plugin_data.plugin_name, value.metadata.plugin_data.content
        if kind == "simple_value":
            sink = self._series(tag, self.scalars, _Scalars).add_simple
        elif kind == "histo":
            sink = self._series(tag, self.histograms, _Histograms).add_histo
        elif kind == "tensor":
            plugin = plugin or _plugin_by_tag(tag, value.tensor)
            if plugin == SCALARS_PLUGIN:
                sink = self._series(tag, self.scalars, _Scalars).add_value
            elif plugin == HISTOGRAMS_PLUGIN:
                sink = self._series(tag, self.histograms, _Histograms).add_value
            elif plugin == PLUGIN_NAME and tag == MODEL_FACTS:
                sink = self.facts.add_value
            elif plugin == PLUGIN_NAME and (parsed := parse_tag(tag)) and parsed[1] == UNITS:
                sink = self._units_of(parsed[0], content).add_value
            else:
                sink = _ignore
        else:
            sink = _ignore
        self.sinks[tag] = sink
        self.decisions[tag] = (str(kind), plugin, bytes(content))
        if self.deciders is not None:
            self.deciders[tag] = value.SerializeToString()
        return sink

    def _series(self, tag: str, store: dict, kind: type) -> Any:
        self._note_layer(tag)
        return store.setdefault(tag, kind())

    def _units_of(self, layer: str, content: bytes) -> _Units:
        if layer not in self.units:
            metadata = UnitsMetadata.from_bytes(content) if content else UnitsMetadata(1e-6, "epoch", rows=())
            if metadata.rows and not set(REQUIRED_UNIT_ROWS) <= set(metadata.rows):
                raise ValueError(f"per-unit record rows {metadata.rows} lack {REQUIRED_UNIT_ROWS}")
            self.units[layer] = _Units(metadata)
        self.layers.setdefault(layer, None)
        return self.units[layer]

    def _note_layer(self, tag: str) -> None:
        parsed = parse_tag(tag)
        if parsed:
            self.layers.setdefault(parsed[0], None)

    @staticmethod
    def _finished(store: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """Each tag's series; a tag none of whose values could be read is dropped with a warning."""
        finished = {}
        for tag, series in store.items():
            if len(series.steps) == 0:
                warnings.append(f"{tag}: none of its values could be read; left it out")
                continue
            finished[tag] = series.finish()
        return finished

    def finish(self, path: str, files: tuple[str, ...], truncated: tuple[str, ...], notes: tuple[str, ...] = ()) -> Run:
        """The run read so far. Reading may go on afterwards (a live logdir), and ``finish`` again."""
        warnings = [*self.warnings, *notes]
        return Run(
            path=path,
            scalars=self._finished(self.scalars, warnings),
            histograms=self._finished(self.histograms, warnings),
            units=self._finished(self.units, warnings),
            layers=tuple(self.layers),
            facts=tuple(self.facts.records),
            formats=tuple(sorted(self.formats)),
            files=files,
            truncated_files=truncated,
            warnings=tuple(warnings),
            records=self.records,
        )


def read_run(folder: str, files: list[str], run_path: str = ".", storage: Storage = LOCAL) -> Run:
    """Read ``files`` (names inside ``folder``, already in order) as one run.

    ``storage`` holds the folder: the local file system unless told otherwise.

    A file that ends early is read up to its last whole record; a damaged
    record is skipped. Both are noted in ``Run.warnings``.
    """
    reader = _RunReader()
    truncated: list[str] = []
    for name in files:
        shown = os.path.normpath(os.path.join(run_path, name))
        ends_at, read, _ = reader.read_file(storage.join(folder, name), shown, storage)
        if ends_at is not None:
            truncated.append(shown)
            reader.warnings.append(ends_early(shown, ends_at, read))
    return reader.finish(run_path, tuple(files), tuple(truncated))


def ends_early(name: str, offset: int, records: int) -> str:
    """The note for a file whose last record is incomplete."""
    return (
        f"{name} ends early at offset {offset} (training stopped mid-write or is still"
        f" writing): read the {records} whole records before it"
    )

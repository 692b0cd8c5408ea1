"""Write event files without TensorFlow: the no-TensorFlow twin of ``tf.summary``.

Used to put the report into the logdir as a text summary, and to build event
files in tests. Values are written as TF2 does (tensors with plugin metadata on
a tag's first value), so TensorBoard and :func:`read_logdir` read them alike.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with EventWriter(folder) as writer:
...     writer.scalar("epoch_loss", 0.5, step=0)
>>> from keras_relu_doctor.events import read_logdir
>>> read_logdir(folder).runs[0].scalars["epoch_loss"].last
0.5
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import socket
import tempfile
import time
from typing import Iterable

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from keras_relu_doctor.errors import LogdirNotFound, one_line
from keras_relu_doctor.events.framing import frame
from keras_relu_doctor.events.storage import is_url, storage_for
from keras_relu_doctor.tags import (
    HISTOGRAMS_PLUGIN,
    MODEL_FACTS_CONTENT,
    PLUGIN_NAME,
    SCALARS_PLUGIN,
    TEXT_PLUGIN,
    UnitsMetadata,
)

_NUMPY_DTYPES = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
}


def array_to_tensor(values: np.ndarray) -> tensor_pb2.TensorProto:
    """A ``TensorProto`` holding a numeric array (little-endian bytes) or strings."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in values.shape]
    )
    if values.dtype.kind in "OSU":
        strings = [value.encode("utf-8") if isinstance(value, str) else bytes(value) for value in values.ravel()]
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=strings)
    dtype = np.dtype(values.dtype).newbyteorder("=")
    return tensor_pb2.TensorProto(
        dtype=_NUMPY_DTYPES[dtype],
        tensor_shape=shape,
        tensor_content=np.ascontiguousarray(values, dtype=dtype.newbyteorder("<")).tobytes(),
    )


def histogram_buckets(values: np.ndarray, bins: int = 30) -> np.ndarray:
    """``(left, right, count)`` buckets as TF2's ``tf.summary.histogram`` computes them."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return np.zeros((0, 3))
    low, high = float(values.min()), float(values.max())
    if low == high:
        return np.array([[low, high, float(values.size)]])
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return np.stack((edges[:-1], edges[1:], counts.astype(np.float64)), axis=-1)


_FILE_COUNTER = itertools.count(1)

UNITS_DESCRIPTION = "Per-unit liveness on the probe batch: rows active_fraction, max_abs_output, output_range."
FACTS_DESCRIPTION = "ReluDoctor's model facts (JSON): layers, activations, initializers, optimizer, loss."


@functools.lru_cache(maxsize=None)
def summary_metadata(plugin: str, content: bytes = b"") -> summary_pb2.SummaryMetadata:
    """The metadata that marks a value for ``plugin``, as ``tf.summary`` writes it.

    >>> summary_metadata(HISTOGRAMS_PLUGIN).plugin_data.plugin_name
    'histograms'
    """
    from tensorboard.plugins.histogram import metadata as histogram_metadata
    from tensorboard.plugins.scalar import metadata as scalar_metadata

    if plugin == HISTOGRAMS_PLUGIN:
        return histogram_metadata.create_summary_metadata(display_name="", description="")
    if plugin == SCALARS_PLUGIN:
        return scalar_metadata.create_summary_metadata(display_name="", description="")
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin, content=content)
    )
    if plugin == PLUGIN_NAME:
        metadata.summary_description = FACTS_DESCRIPTION if content == MODEL_FACTS_CONTENT else UNITS_DESCRIPTION
        # Said outright: TensorBoard's Rust data server (--load_fast) drops a third-party plugin's
        # values whose class it cannot tell, and the ReLU Doctor tab would stay disabled.
        metadata.data_class = summary_pb2.DATA_CLASS_TENSOR
    return metadata


class EventWriter:
    """Appends summaries to a new event file in ``folder``; use as a context manager.

    ``folder`` may be an fsspec URL (``s3://bucket/logs/train``). Object stores
    cannot append, so the file is then written locally and uploaded whole at
    every :meth:`flush` and at :meth:`close` (as TensorFlow's own S3 file
    system did): readers see the events up to the last flush.
    """

    def __init__(self, folder: str | os.PathLike, suffix: str = ".v2") -> None:
        # Files of one process in one second sort in the order written (a counter, not an address):
        # TensorBoard and our reader take a run's files in name order after the timestamp.
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{next(_FILE_COUNTER):06d}{suffix}"
        self._remote: tuple[object, str] | None = None
        storage, where = storage_for(folder)
        if is_url(folder):
            self._remote = (storage.fs, storage.join(where, name))
            self.path = storage.join(os.fspath(folder), name)
            self._staging = tempfile.mkdtemp(prefix="relu_doctor_events_")
            local = os.path.join(self._staging, name)
        else:
            os.makedirs(where, exist_ok=True)
            self.path = local = os.path.join(where, name)
        self._file = open(local, "wb")
        self._tags_seen: set[str] = set()
        self.write_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        try:
            self.flush()  # on object storage, the first upload says at once whether the URL takes writes
        except Exception as error:  # noqa: BLE001 -- the store's own words: no bucket, no credentials
            self._file.close()
            if self._remote is not None:
                shutil.rmtree(self._staging, ignore_errors=True)
            raise LogdirNotFound(
                f"cannot write events to {self.path!r} ({one_line(error)}): check the URL, the bucket and the credentials"
            ) from None

    def write_event(self, event: event_pb2.Event) -> None:
        self._file.write(frame(event.SerializeToString()))

    def summaries(
        self, step: int, values: Iterable[tuple[str, summary_pb2.SummaryMetadata, np.ndarray]]
    ) -> None:
        """Write several tensors as one event at ``step``; each tag's metadata goes with its first value."""
        summary = summary_pb2.Summary()
        for tag, metadata, array in values:
            value = summary.value.add(tag=tag)
            value.tensor.CopyFrom(array_to_tensor(array))
            if tag not in self._tags_seen:
                value.metadata.CopyFrom(metadata)
                self._tags_seen.add(tag)
        self.write_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def flush(self) -> None:
        self._file.flush()
        if self._remote is not None:
            fs, remote = self._remote
            fs.put_file(self._file.name, remote)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.summaries(step, [(tag, summary_metadata(SCALARS_PLUGIN), np.array(value, dtype=np.float32))])

    def histogram(self, tag: str, values: np.ndarray, step: int, bins: int = 30) -> None:
        self.summaries(step, [(tag, summary_metadata(HISTOGRAMS_PLUGIN), histogram_buckets(values, bins))])

    def units(self, tag: str, record: np.ndarray, step: int, metadata: UnitsMetadata) -> None:
        record = np.asarray(record, dtype=np.float32)
        self.summaries(step, [(tag, summary_metadata(PLUGIN_NAME, metadata.to_bytes()), record)])

    def text(self, tag: str, markdown: str, step: int) -> None:
        self.summaries(step, [(tag, summary_metadata(TEXT_PLUGIN), np.array([markdown], dtype=object))])

    def close(self) -> None:
        if self._file.closed:
            return
        self.flush()
        self._file.close()
        if self._remote is not None:
            shutil.rmtree(self._staging, ignore_errors=True)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

"""TFRecord framing: split an event file into payloads, checking both CRC32Cs.

A record is ``uint64 length | uint32 masked_crc(length) | data | uint32 masked_crc(data)``,
little-endian. The file is read in blocks, so memory stays at one block plus one
record whatever the file size.

A damaged record never stops the read: after a bad length CRC, a bad data CRC
or a length that runs past the end of the file, the reader scans forward for
the next header whose CRC holds and resumes there (a restarted writer may have
appended whole records after a torn one). The scan is vectorised: only offsets
whose 8 length bytes read as a plausible length (above 0, within the file) have
their CRC computed, so megabytes of zeros or noise are crossed in milliseconds.
An incomplete last record with nothing readable after it (training killed
mid-write, or still writing) ends the file with a note instead of an error.

>>> import io
>>> data = frame(b"hello") + frame(b"world")
>>> [record.payload for record in iter_records(io.BytesIO(data), "demo")[0]]
[b'hello', b'world']
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import google_crc32c
import numpy as np

HEADER_SIZE = 12  # uint64 length + uint32 masked CRC of the length
FOOTER_SIZE = 4  # uint32 masked CRC of the data
BLOCK_SIZE = 1 << 22  # 4 MiB: large enough that Python overhead per block is noise
MAX_READ = 1 << 28  # one read at most: a corrupt length never asks for exabytes
_MASK_DELTA = 0xA282EAD8
_crc32c = google_crc32c.value
_U32 = 0xFFFFFFFF


def masked_crc(data: bytes | memoryview) -> int:
    """CRC32C of ``data``, masked as TFRecord stores it.

    >>> hex(masked_crc(b""))
    '0xa282ead8'
    """
    crc = _crc32c(data)
    # The high bits of ``crc << 17`` fall off with the final mask.
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def frame(payload: bytes) -> bytes:
    """One TFRecord holding ``payload`` (used to write the report summary)."""
    length = struct.pack("<Q", len(payload))
    return b"".join(
        (length, struct.pack("<I", masked_crc(length)), payload, struct.pack("<I", masked_crc(payload)))
    )


@dataclass(frozen=True)
class Record:
    """One payload and the byte offset of its header in the file."""

    offset: int
    payload: bytes


@dataclass
class FramingNotes:
    """What went wrong while framing one file; filled as records are read."""

    skipped: list[str]
    truncated_at: int | None = None
    end: int = 0  # where a later read of the same, grown file picks up: after the last whole record
    first: int | None = None  # with ``find_start``: the first record boundary found


def iter_records(
    stream: BinaryIO, name: str, size: int | None = None
) -> tuple[Iterator[Record], FramingNotes]:
    """Records of ``stream`` (a binary file), and the notes filled while iterating.

    ``name`` only appears in the notes, so that they say which file. ``size``,
    the file's length when known, lets a damaged length field end the file at
    once instead of reading to its end.
    """
    batches, notes = iter_batches(stream, name, size)
    records = (Record(offset, payload) for offsets, payloads in batches for offset, payload in zip(offsets, payloads))
    return records, notes


def iter_batches(
    stream: BinaryIO,
    name: str,
    size: int | None = None,
    start: int = 0,
    stop: int | None = None,
    find_start: bool = False,
) -> tuple[Iterator[tuple[list[int], list[bytes]]], FramingNotes]:
    """Like :func:`iter_records`, as ``(offsets, payloads)`` lists of every whole record per block.

    Batches keep the per-record Python work to a few operations, which is what
    makes the reader fast. ``start`` is the file offset ``stream`` is at: a
    record boundary (``notes.end`` of an earlier read of the same file), or,
    with ``find_start``, any offset, from which the first header whose CRC
    holds is looked for (``notes.first``). Records starting at or after
    ``stop`` are left out; ``notes.end`` is then where the first of them starts.
    """
    notes = FramingNotes(skipped=[], end=start)
    return _batches(stream, name, notes, size, start, stop, find_start), notes


def _batches(
    stream: BinaryIO,
    name: str,
    notes: FramingNotes,
    size: int | None,
    first_offset: int = 0,
    stop: int | None = None,
    find_start: bool = False,
) -> Iterator[tuple[list[int], list[bytes]]]:
    buffer = b""
    position = 0  # offset in ``buffer``
    base = first_offset  # file offset of buffer[0]
    at_eof = False
    stop = (1 << 63) if stop is None else stop
    if find_start:
        buffer, base, position, at_eof, found = _resync(stream, buffer, base, 0, at_eof, size)
        if not found:
            notes.end = base + position
            return
        notes.first = base + position
    unpack_length, unpack_crc, crc = struct.Struct("<Q").unpack_from, struct.Struct("<I").unpack_from, masked_crc
    value = _crc32c
    while True:
        offsets: list[int] = []
        payloads: list[bytes] = []
        end = len(buffer)
        limit = stop - base
        bad_data = None
        # The fast path: every whole, undamaged record in the buffer. The length's own CRC is
        # checked only when the data's fails (below): a damaged length frames the wrong bytes,
        # whose CRC then fails too (but for a 2**-32 chance), so nothing damaged gets through.
        while end - position >= 12 and position < limit:  # HEADER_SIZE, inlined: runs once per record
            length = unpack_length(buffer, position)[0]
            start = position + 12
            if end - start < length + 4:
                break
            payload = buffer[start : start + length]
            raw = value(payload)
            if (((raw >> 15) | (raw << 17)) + 0xA282EAD8) & 0xFFFFFFFF != unpack_crc(buffer, start + length)[0]:
                bad_data = base + position
                break
            offsets.append(base + position)
            payloads.append(payload)
            position = start + length + 4
        if offsets:
            notes.end = base + position
            yield offsets, payloads
        if position >= limit:
            notes.end = base + position
            return
        problem = None
        if bad_data is not None:
            if crc(buffer[position : position + 8]) != unpack_crc(buffer, position + 8)[0]:
                problem = f"bad length checksum at offset {bad_data}"
            else:
                problem = f"bad data checksum in the record at offset {bad_data}"
        else:
            available = len(buffer) - position
            if available < HEADER_SIZE:
                if at_eof:
                    if available:
                        notes.truncated_at = base + position
                    notes.end = base + position
                    return
                buffer, base, position, at_eof = _refill(stream, buffer, base, position)
                continue
            header = buffer[position : position + HEADER_SIZE]
            if crc(header[:8]) != unpack_crc(header, 8)[0]:
                problem = f"bad length checksum at offset {base + position}"
        if problem is not None:
            # The length is not to be trusted either: look for the next header from the next byte.
            buffer, base, position, at_eof, found = _resync(stream, buffer, base, position + 1, at_eof, size)
            resumed = f"resumed at offset {base + position}" if found else "nothing readable after it"
            notes.skipped.append(f"{name}: {problem}; {resumed}")
            if not found:
                notes.end = base + position  # the damaged rest, passed over
                return
            continue
        record_size = HEADER_SIZE + unpack_length(header)[0] + FOOTER_SIZE
        if (size is not None and base + position + record_size > size) or (at_eof and available < record_size):
            # A torn record: the last one (training killed or still writing),
            # or one a restarted writer appended whole records after.
            torn = base + position
            buffer, base, position, at_eof, found = _resync(stream, buffer, base, position + 1, at_eof, size)
            if not found:
                notes.truncated_at = notes.end = torn
                return
            notes.skipped.append(
                f"{name}: the record at offset {torn} runs past the end of the file; resumed at offset {base + position}"
            )
            continue
        buffer, base, position, at_eof = _refill(stream, buffer, base, position, need=record_size)


def _refill(
    stream: BinaryIO, buffer: bytes, base: int, position: int, need: int = HEADER_SIZE
) -> tuple[bytes, int, int, bool]:
    """Drop consumed bytes and read at least ``need`` more (one block, or more)."""
    chunk = stream.read(min(max(BLOCK_SIZE, need - (len(buffer) - position)), MAX_READ))
    rest = buffer[position:]
    return rest + chunk, base + position, 0, not chunk


def _resync(
    stream: BinaryIO, buffer: bytes, base: int, position: int, at_eof: bool, size: int | None = None
) -> tuple[bytes, int, int, bool, bool]:
    """Scan forward, a block at a time, for the next header whose length CRC holds.

    Returns the buffer, its file offset, the header's position in it (the
    buffer's end when none was found), the end-of-file flag, and whether one was found.
    """
    while True:
        found = _next_header(buffer, position, base, size)
        if found is not None:
            return buffer, base, found, at_eof, True
        if at_eof:
            return buffer, base, len(buffer), at_eof, False
        # A header may straddle the block boundary: keep the bytes it could start in.
        keep = max(position, len(buffer) - (HEADER_SIZE - 1))
        buffer, base, position, at_eof = _refill(stream, buffer, base, keep)


def _next_header(buffer: bytes, position: int, base: int, size: int | None) -> int | None:
    """The first offset at or after ``position`` where a whole header's length CRC holds.

    Only offsets whose length reads as 1 to the bytes left in the file (or
    :data:`MAX_READ`) are candidates, found with numpy; zeros and random
    bytes offer almost none, so the CRC runs on a handful of them.
    """
    count = len(buffer) - position - HEADER_SIZE + 1
    if count <= 0:
        return None
    low = np.ndarray((count,), "<u4", buffer, offset=position, strides=(1,))
    high = np.ndarray((count,), "<u4", buffer, offset=position + 4, strides=(1,))
    limit = MAX_READ if size is None else size - base - position
    candidates = np.flatnonzero((high == 0) & (low > 0) & (low <= limit))
    unpack_crc = struct.Struct("<I").unpack_from
    for offset in candidates.tolist():
        start = position + offset
        if masked_crc(buffer[start : start + 8]) == unpack_crc(buffer, start + 8)[0]:
            return start
    return None

"""TFRecord framing: split an event file into payloads, checking both CRC32Cs.

A record is ``uint64 length | uint32 masked_crc(length) | data | uint32 masked_crc(data)``,
little-endian. The file is read in blocks, so memory stays at one block plus one
record whatever the file size.

A damaged record never stops the read: a bad data CRC skips that record, a bad
length CRC makes the reader scan forward for the next header whose CRC holds,
and an incomplete last record (training killed mid-write, or still writing) ends
the file with a note instead of an error.

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
    stream: BinaryIO, name: str, size: int | None = None
) -> tuple[Iterator[tuple[list[int], list[bytes]]], FramingNotes]:
    """Like :func:`iter_records`, as ``(offsets, payloads)`` lists of every whole record per block.

    Batches keep the per-record Python work to a few operations, which is what
    makes the reader fast.
    """
    notes = FramingNotes(skipped=[])
    return _batches(stream, name, notes, size), notes


def _batches(
    stream: BinaryIO, name: str, notes: FramingNotes, size: int | None
) -> Iterator[tuple[list[int], list[bytes]]]:
    buffer = b""
    position = 0  # offset in ``buffer``
    base = 0  # file offset of buffer[0]
    at_eof = False
    unpack_length, unpack_crc, crc = struct.Struct("<Q").unpack_from, struct.Struct("<I").unpack_from, masked_crc
    value = _crc32c
    while True:
        offsets: list[int] = []
        payloads: list[bytes] = []
        end = len(buffer)
        # The fast path: every whole, undamaged record in the buffer.
        while end - position >= 12:  # HEADER_SIZE, inlined: this loop runs once per record
            length = unpack_length(buffer, position)[0]
            raw = value(buffer[position : position + 8])
            if (((raw >> 15) | (raw << 17)) + 0xA282EAD8) & 0xFFFFFFFF != unpack_crc(buffer, position + 8)[0]:
                break
            start = position + 12
            if end - start < length + 4:
                break
            payload = buffer[start : start + length]
            raw = value(payload)
            if (((raw >> 15) | (raw << 17)) + 0xA282EAD8) & 0xFFFFFFFF != unpack_crc(buffer, start + length)[0]:
                notes.skipped.append(f"{name}: bad data checksum in the record at offset {base + position}; skipped it")
            else:
                offsets.append(base + position)
                payloads.append(payload)
            position = start + length + 4
        if offsets:
            yield offsets, payloads
        available = len(buffer) - position
        if available < HEADER_SIZE:
            if at_eof:
                if available:
                    notes.truncated_at = base + position
                return
            buffer, base, position, at_eof = _refill(stream, buffer, base, position)
            continue
        header = buffer[position : position + HEADER_SIZE]
        if crc(header[:8]) != unpack_crc(header, 8)[0]:
            bad_offset = base + position
            buffer, base, position, at_eof, found = _resync(stream, buffer, base, position + 1, at_eof)
            resumed = f"resumed at offset {base + position}" if found else "nothing readable after it"
            notes.skipped.append(f"{name}: bad length checksum at offset {bad_offset}; {resumed}")
            if not found:
                return
            continue
        record_size = HEADER_SIZE + unpack_length(header)[0] + FOOTER_SIZE
        if (size is not None and base + position + record_size > size) or at_eof:
            notes.truncated_at = base + position
            return
        buffer, base, position, at_eof = _refill(stream, buffer, base, position, need=record_size)


def _refill(
    stream: BinaryIO, buffer: bytes, base: int, position: int, need: int = HEADER_SIZE
) -> tuple[bytes, int, int, bool]:
    """Drop consumed bytes and read at least ``need`` more (one block, or more)."""
    chunk = stream.read(min(max(BLOCK_SIZE, need - (len(buffer) - position)), MAX_READ))
    rest = buffer[position:]
    return rest + chunk, base + position, 0, not chunk


def _resync(
    stream: BinaryIO, buffer: bytes, base: int, position: int, at_eof: bool
) -> tuple[bytes, int, int, bool, bool]:
    """Scan forward byte by byte for a header whose length CRC holds."""
    while True:
        while len(buffer) - position < HEADER_SIZE and not at_eof:
            buffer, base, position, at_eof = _refill(stream, buffer, base, position)
        if len(buffer) - position < HEADER_SIZE:
            return buffer, base, len(buffer), at_eof, False
        header = buffer[position : position + HEADER_SIZE]
        if masked_crc(header[:8]) == struct.unpack_from("<I", header, 8)[0]:
            return buffer, base, position, at_eof, True
        position += 1

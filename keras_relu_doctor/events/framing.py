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
_U32 = 0xFFFFFFFF


def masked_crc(data: bytes | memoryview) -> int:
    """CRC32C of ``data``, masked as TFRecord stores it.

    >>> hex(masked_crc(b""))
    '0xa282ead8'
    """
    crc = google_crc32c.value(bytes(data))
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


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
    notes = FramingNotes(skipped=[])
    return _records(stream, name, notes, size), notes


def _records(stream: BinaryIO, name: str, notes: FramingNotes, size: int | None) -> Iterator[Record]:
    buffer = b""
    position = 0  # offset in ``buffer``
    base = 0  # file offset of buffer[0]
    at_eof = False
    while True:
        available = len(buffer) - position
        if available < HEADER_SIZE and not at_eof:
            buffer, base, position, at_eof = _refill(stream, buffer, base, position)
            continue
        if available == 0:
            return
        if available < HEADER_SIZE:
            notes.truncated_at = base + position
            return
        header = buffer[position : position + HEADER_SIZE]
        (length,) = struct.unpack_from("<Q", header)
        (length_crc,) = struct.unpack_from("<I", header, 8)
        if masked_crc(header[:8]) != length_crc:
            bad_offset = base + position
            buffer, base, position, at_eof, found = _resync(stream, buffer, base, position + 1, at_eof)
            resumed = f"resumed at offset {base + position}" if found else "nothing readable after it"
            notes.skipped.append(f"{name}: bad length checksum at offset {bad_offset}; {resumed}")
            if not found:
                return
            continue
        record_size = HEADER_SIZE + length + FOOTER_SIZE
        if size is not None and base + position + record_size > size:
            notes.truncated_at = base + position
            return
        while len(buffer) - position < record_size and not at_eof:
            buffer, base, position, at_eof = _refill(stream, buffer, base, position, need=record_size)
        if len(buffer) - position < record_size:
            notes.truncated_at = base + position
            return
        start = position + HEADER_SIZE
        payload = buffer[start : start + length]
        (data_crc,) = struct.unpack_from("<I", buffer, start + length)
        offset = base + position
        position += record_size
        if masked_crc(payload) != data_crc:
            notes.skipped.append(f"{name}: bad data checksum in the record at offset {offset}; skipped it")
            continue
        yield Record(offset, payload)


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

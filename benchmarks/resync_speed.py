"""How fast the reader crosses a damaged region, against a byte-by-byte scan measured in the same run.

A file holds 3 records, then N MB of zeros (or random bytes), then the same 3
records. The reader must find the records after the damage. The anchor is the
scan the reader used before: check the length CRC at every offset in turn
(timed on 1 MB and scaled, since it takes about half a second per MB).

Usage: python benchmarks/resync_speed.py [--mb 20]
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()

    from keras_relu_doctor.events import read_logdir
    from keras_relu_doctor.events.framing import masked_crc
    from keras_relu_doctor.events.writer import EventWriter

    folder = tempfile.mkdtemp()
    with EventWriter(folder) as writer:
        for step in range(3):
            writer.scalar("loss", 1.0, step=step)
    records = open(writer.path, "rb").read()
    os.remove(writer.path)

    def byte_by_byte(data: bytes) -> float:
        start = time.perf_counter()
        for offset in range(len(data) - 12):
            if masked_crc(data[offset : offset + 8]) == struct.unpack_from("<I", data, offset + 8)[0]:
                break
        return time.perf_counter() - start

    print(f"{args.mb} MB of damage between intact records")
    print(f"{'damage':<8}{'ours s':>10}{'byte-by-byte s (from 1 MB)':>30}{'speed-up':>10}")
    for name, filler in (("zeros", b"\0" * (args.mb << 20)), ("random", os.urandom(args.mb << 20))):
        with open(os.path.join(folder, "events.out.tfevents.1.damaged"), "wb") as stream:
            stream.write(records + filler + records)
        start = time.perf_counter()
        run = read_logdir(folder).runs[0]
        ours = time.perf_counter() - start
        assert len(run.scalars["loss"].steps) == 3 and any("resumed at offset" in w for w in run.warnings)
        anchor = byte_by_byte(filler[: 1 << 20]) * args.mb
        print(f"{name:<8}{ours:>10.3f}{anchor:>30.2f}{anchor / ours:>10.0f}x")


if __name__ == "__main__":
    main()

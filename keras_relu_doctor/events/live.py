"""A logdir read while training writes it: each poll reads only what was written since the last.

Every file keeps the offset after its last whole record; a poll sizes the
files, reads from those offsets, and leaves an incomplete last record for the
next poll. A file that shrank or was replaced (an object store's upload of a
different file), or one that appears before files already read, makes its run
read again from the start, so the series always equal a fresh read.

>>> import tempfile
>>> live = LiveLogdir(tempfile.mkdtemp())
>>> live.poll(), live.runs()
([], [])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from keras_relu_doctor.events.logdir import _walk
from keras_relu_doctor.events.run import _RunReader
from keras_relu_doctor.events.series import Run
from keras_relu_doctor.events.storage import Storage, storage_for


@dataclass
class _LiveRun:
    path: str
    reader: _RunReader = field(default_factory=_RunReader)
    offsets: dict[str, int] = field(default_factory=dict)  # file name -> where the next read starts
    files: tuple[str, ...] = ()

    def update(self, storage: Storage, folder: str, files: list[str]) -> bool:
        """Read what the files gained; True when a record was read (or the run was read anew)."""
        infos = {name: storage.info(storage.join(folder, name)) for name in files}
        # The files read so far must still lead, in the same order, each at least as long as read.
        still_leading = list(files[: len(self.offsets)]) == list(self.files[: len(self.offsets)])
        fresh = not still_leading or any(infos[name].size < offset for name, offset in self.offsets.items())
        if fresh:
            self.reader, self.offsets = _RunReader(), {}
        changed = fresh
        for name in files:
            start = self.offsets.get(name, 0)
            info = infos[name]
            if name in self.offsets and (not info.regular or info.size == start):
                continue
            shown = os.path.normpath(os.path.join(self.path, name))
            _, read, end = self.reader.read_file(storage.join(folder, name), shown, storage, start, info)
            self.offsets[name] = end
            changed = changed or read > 0
        self.files = tuple(files)
        return changed

    def run(self) -> Run:
        return self.reader.finish(self.path, self.files, ())


class LiveLogdir:
    """The runs of a logdir (local or an fsspec URL) as they grow; see the module docstring.

    The logdir need not exist yet: polls find nothing until training starts writing.
    """

    def __init__(self, logdir: str | os.PathLike, run_glob: str | None = None) -> None:
        self.path = os.fspath(logdir)
        self.storage, self.root = storage_for(self.path)
        self.run_glob = run_glob
        self._runs: dict[str, _LiveRun] = {}

    def check(self) -> None:
        """Raise the storage's own error when the logdir's store cannot be reached (a wrong bucket,
        no credentials); a logdir that does not exist yet is fine."""
        self.storage.check_reachable(self.root)
        self.storage.isdir(self.root)

    def poll(self) -> list[str]:
        """Read what was written since the last poll; return the runs that changed, by path."""
        self.storage.refresh(self.root)
        if not self.storage.isdir(self.root):
            return []
        found, _ = _walk(self.storage, self.root)
        changed = []
        for path, files in found:
            if self.run_glob is not None and not fnmatchcase(path, self.run_glob):
                continue
            live = self._runs.setdefault(path, _LiveRun(path))
            if live.update(self.storage, self.storage.join(self.root, path), files):
                changed.append(path)
        return changed

    def run(self, path: str) -> Run:
        """The run at ``path`` as read so far."""
        return self._runs[path].run()

    def runs(self) -> list[Run]:
        """Every run read so far, by path."""
        return [self._runs[path].run() for path in sorted(self._runs)]

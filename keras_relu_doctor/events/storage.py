"""Where event files live: a local folder, or any fsspec URL (``s3://``, ``gs://``, ...).

The reader asks a :class:`Storage` to list folders, size files and open them
for streaming; it never downloads a whole logdir first. Local paths go through
``os`` directly (no fsspec import, no per-file overhead); a path with a
scheme goes through fsspec, which reads objects in blocks (s3fs and gcsfs fetch
a few MB per request), so memory stays bounded whatever the file size.

>>> storage, root = storage_for("runs/experiment")
>>> type(storage).__name__, root
('LocalStorage', 'runs/experiment')
>>> is_url("s3://bucket/logs"), is_url("runs/experiment"), is_url("C:\\\\logs")
(True, False, False)
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

from keras_relu_doctor.errors import BadOption, LogdirNotFound

# A scheme is two or more letters, so a Windows drive letter ("C:\\") is not one.
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
# The extra that brings each common scheme's fsspec implementation.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a place through a scheme (``s3://``) rather than a local path."""
    match = _URL.match(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else None
    return bool(match) and match.group(1).lower() != "file"


@dataclass(frozen=True)
class FileInfo:
    """What the reader needs to know of a file before opening it."""

    size: int
    regular: bool  # False for a FIFO, a device or a socket: opening one may block forever
    problem: str = ""  # why it cannot be read (a broken link), if so


class LocalStorage:
    """The local file system, through ``os``."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def walk(self, root: str, onerror: Any) -> Iterator[tuple[str, list[str], list[str]]]:
        return os.walk(root, onerror=onerror)

    def info(self, path: str) -> FileInfo:
        try:
            status = os.stat(path)
        except OSError as error:
            return FileInfo(0, False, f"cannot be followed ({error.strerror})")
        return FileInfo(status.st_size, stat.S_ISREG(status.st_mode))

    def open(self, path: str) -> BinaryIO:
        return open(path, "rb")

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)

    def relpath(self, path: str, root: str) -> str:
        return os.path.relpath(path, root).replace(os.sep, "/")

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def remove(self, path: str) -> None:
        os.remove(path)

    def refresh(self, path: str) -> None:
        """Nothing is cached locally."""

    def check_reachable(self, path: str) -> None:
        """A local folder that does not exist yet may be created by the training."""


class FsspecStorage:
    """Any fsspec file system (S3, GCS, Azure, HTTP, memory, ...), by URL.

    Folders are prefixes: a walk lists them with their files' sizes in the
    same requests, so sizing a file later costs nothing.
    """

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self._sizes: dict[str, int] = {}

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def isdir(self, path: str) -> bool:
        return bool(self.fs.isdir(path))

    def walk(self, root: str, onerror: Any) -> Iterator[tuple[str, list[str], list[str]]]:
        try:
            for folder, subfolders, files in self.fs.walk(root, detail=True):
                for name, details in files.items():
                    self._sizes[self.join(folder, name)] = int(details.get("size") or 0)
                yield folder, sorted(subfolders), sorted(files)
        except OSError as error:
            onerror(error)

    def info(self, path: str) -> FileInfo:
        if path in self._sizes:
            return FileInfo(self._sizes[path], True)
        try:
            details = self.fs.info(path)
        except OSError as error:
            return FileInfo(0, False, f"cannot be read ({error.strerror or type(error).__name__})")
        return FileInfo(int(details.get("size") or 0), details.get("type") == "file")

    def open(self, path: str) -> BinaryIO:
        # The reader asks for a few MB at a time: each read is one ranged request, with no
        # read-ahead cache holding more, so memory stays at a block or two per open file.
        return self.fs.open(path, "rb", cache_type="none")

    def join(self, *parts: str) -> str:
        # "." (a logdir that is itself the run) names no key in an object store.
        kept = [part for part in parts if part and part != "."]
        return "/".join(part.strip("/") if index else part.rstrip("/") for index, part in enumerate(kept))

    def listdir(self, path: str) -> list[str]:
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(path, detail=False)]

    def remove(self, path: str) -> None:
        self.fs.rm(path)

    def refresh(self, path: str) -> None:
        """Forget cached listings: a live logdir changes between polls (s3fs forgets a path's
        parents' listings for ``invalidate_cache(path)``, not its children's, so all go)."""
        self.fs.invalidate_cache()
        self._sizes.clear()

    def check_reachable(self, path: str) -> None:
        """Raise (the store's own error) when ``path``'s bucket cannot be listed; a missing prefix is fine."""
        bucket = path.strip("/").split("/")[0]
        if bucket and not self.fs.exists(bucket):
            raise FileNotFoundError(f"bucket or container {bucket!r} does not exist")

    def relpath(self, path: str, root: str) -> str:
        path, root = path.rstrip("/"), root.rstrip("/")
        return "." if path == root else path[len(root) + 1 :] if path.startswith(root + "/") else path


Storage = LocalStorage | FsspecStorage
LOCAL = LocalStorage()


def storage_for(path: str | os.PathLike) -> tuple[Storage, str]:
    """The storage that holds ``path``, and the path in that storage's terms.

    Raises ``BadOption`` naming the package to install when the scheme needs
    one (``pip install 'keras-relu-doctor[s3]'`` for ``s3://``).
    """
    text = os.fspath(path)
    if not is_url(text):
        return LOCAL, text[len("file://") :] if text.startswith("file://") else text
    scheme = _URL.match(text).group(1).lower()
    extra = EXTRAS.get(scheme)
    install = f"pip install 'keras-relu-doctor[{extra}]'" if extra else "pip install fsspec and the package for this scheme"
    try:
        import fsspec
    except ImportError:
        raise BadOption(f"reading {scheme}:// needs fsspec: {install}") from None
    try:
        fs, root = fsspec.core.url_to_fs(text)
    except ImportError as error:
        raise BadOption(f"reading {scheme}:// needs a package that is not installed ({error}): {install}") from None
    except ValueError as error:
        # fsspec's "Protocol not known: xyz".
        raise LogdirNotFound(f"cannot read {text!r}: {error}") from None
    return FsspecStorage(fs), root

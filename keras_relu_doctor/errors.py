"""Error types for bad input, one per kind, under one base class.

The CLI maps :class:`ReluDoctorError` to a one-line message and exit code 2;
library users can catch the base class or a specific kind.

>>> try:
...     raise LogdirNotFound("logdir 'runs/x' does not exist: pass the folder given to ReluDoctor(log_dir=...)")
... except ReluDoctorError as error:
...     print(error)
logdir 'runs/x' does not exist: pass the folder given to ReluDoctor(log_dir=...)
"""

from __future__ import annotations


def one_line(error: BaseException) -> str:
    """An exception in one line, as another library raised it: its class and its message.

    >>> one_line(FileNotFoundError("The specified bucket   does not exist"))
    'FileNotFoundError: The specified bucket does not exist'
    """
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class ReluDoctorError(Exception):
    """Base class: a problem with the user's input, with a message that says what to do."""


class LogdirNotFound(ReluDoctorError):
    """The logdir does not exist or is not a folder."""


class NoEventFiles(ReluDoctorError):
    """The logdir holds no ``events.out.tfevents.*`` file (or only empty ones)."""


class UnreadableEventFile(ReluDoctorError):
    """An event file could not be opened or holds no readable record."""


class CorruptRecord(ReluDoctorError):
    """A record's length or data CRC does not match, or its payload does not parse."""


class BadOption(ReluDoctorError):
    """A command-line or function option has a value outside what is allowed."""


class UnsupportedModel(ReluDoctorError, ValueError):
    """The callback cannot reach the layer outputs of this model."""


class Interrupted(ReluDoctorError):
    """The user stopped a long command (Ctrl-C); what was finished is kept. The CLI exits 130."""

    exit_code = 130

"""What the reader hands on: per-run series as numpy arrays, in frozen dataclasses.

>>> import numpy as np
>>> series = ScalarSeries(steps=np.array([0, 1]), values=np.array([2.0, 1.5]))
>>> series.last
1.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from keras_relu_doctor.tags import UnitsMetadata


@dataclass(frozen=True)
class ScalarSeries:
    """One scalar tag: ``values[i]`` was logged at ``steps[i]`` (steps ascending, unique)."""

    steps: np.ndarray
    values: np.ndarray

    @property
    def last(self) -> float:
        return float(self.values[-1])


@dataclass(frozen=True)
class HistogramSeries:
    """Statistics of one histogram tag per step (see ``histograms.bucket_stats``).

    The buckets themselves are not kept, so memory grows with the number of
    steps, not with the size of the histograms.
    """

    steps: np.ndarray
    count: np.ndarray
    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    sum_squares: np.ndarray
    zero_fraction: np.ndarray
    fraction_below_minus_0_95: np.ndarray
    fraction_above_0_95: np.ndarray
    fraction_below_0_05: np.ndarray


@dataclass(frozen=True)
class UnitsSeries:
    """The per-unit records of one layer: arrays of shape ``[steps, units]``.

    ``output_range`` (None in records written before schema 2) is max - min of
    each unit's output over the probe batch.
    """

    steps: np.ndarray
    active_fraction: np.ndarray
    max_abs_output: np.ndarray
    metadata: UnitsMetadata
    output_range: np.ndarray | None = None

    @property
    def units(self) -> int:
        return int(self.max_abs_output.shape[1])


@dataclass(frozen=True)
class Run:
    """Everything read from one folder of event files.

    ``path`` is relative to the logdir (``"."`` for the logdir itself). Layers
    are listed in the order their first tag appears, which for the callback is
    the model's order, input to output. ``facts`` holds the model facts the
    callback wrote, ``(step, document)`` once per ``fit``; ``formats`` the
    summary value fields seen (``tensor`` as TF2 writes; ``simple_value`` and
    ``histo`` as TF1, tensorboardX and PyTorch write).
    """

    path: str
    scalars: Mapping[str, ScalarSeries]
    histograms: Mapping[str, HistogramSeries]
    units: Mapping[str, UnitsSeries]
    layers: tuple[str, ...]
    files: tuple[str, ...]
    facts: tuple[tuple[int, Mapping[str, Any]], ...] = ()
    formats: tuple[str, ...] = ()
    truncated_files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    records: int = 0

    @property
    def model_facts(self) -> Mapping[str, Any] | None:
        """The model facts of the last ``fit`` logged, or None (another writer's logs)."""
        return self.facts[-1][1] if self.facts else None

    @property
    def probe_mode(self) -> str | None:
        """``"training"`` or ``"inference"``: how the probe ran the model; None when not recorded."""
        facts = self.model_facts
        if facts and isinstance(facts.get("probe"), Mapping) and facts["probe"].get("mode"):
            return str(facts["probe"]["mode"])
        for series in self.units.values():
            return series.metadata.probe_mode or None
        return None

    @property
    def schema(self) -> int | None:
        """Schema version of the callback's records (2: baseline at step 0); None without them."""
        for series in self.units.values():
            return series.metadata.schema
        return None

    @property
    def step_unit(self) -> str | None:
        """``"epoch"`` or ``"batch"`` as the callback recorded it; None without per-unit records."""
        for series in self.units.values():
            return series.metadata.step_unit
        return None


@dataclass(frozen=True)
class Logdir:
    """A logdir and its runs (every folder below it that holds event files)."""

    path: str
    runs: tuple[Run, ...] = field(default_factory=tuple)

    def run(self, path: str) -> Run:
        """The run at ``path`` (relative to the logdir)."""
        for run in self.runs:
            if run.path == path:
                return run
        raise KeyError(f"no run {path!r}; runs: {[run.path for run in self.runs]}")

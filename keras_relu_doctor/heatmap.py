"""Which unit died when: a layer's per-unit records laid out as a units x steps heatmap.

The report carries one ``LivenessMap`` per layer with per-unit records, so the
HTML page, the TensorBoard dashboard and any JSON reader draw the same picture
from the same numbers. Rows are units sorted by the step they died (dead at the
last step first, earliest death first; then units that died and came back;
then near-dead units; then the rest, least active first). Past
``HEATMAP_ROWS`` units, neighbours in that order share a row; past
``HEATMAP_COLUMNS`` steps, evenly spaced steps are kept, the first and last
among them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_relu_doctor.events.series import UnitsSeries

HEATMAP_ROWS = 64  # a heatmap a reader takes in at once; more units share rows
HEATMAP_COLUMNS = 120  # steps drawn; a long batch-level run keeps evenly spaced ones


@dataclass(frozen=True, eq=False)
class LivenessMap:
    """A layer's units x steps heatmap.

    ``rows[r]`` lists the unit indices drawn in row ``r``; ``dead[r][c]`` is the
    share of them dead at ``steps[c]`` (largest \\|output\\| exactly 0 on every
    probe sample), ``near_dead[r][c]`` the share near-dead, ``activity[r][c]``
    their mean share of probe samples on which they were active. Shares are
    rounded to 3 decimals, in ``[rows, steps]`` float64 arrays (a 64 x 120 map
    of Python floats took 4x the memory, 37 MB for a 50-layer run).

    >>> import numpy as np
    >>> from keras_relu_doctor.tags import UnitsMetadata
    >>> max_abs = np.array([[1.0, 2.0], [0.0, 2.0], [0.0, 2.0]])
    >>> units = UnitsSeries(np.arange(3), (max_abs > 0) * 0.5, max_abs, UnitsMetadata(1e-6, "epoch"))
    >>> grid = liveness_map(units)
    >>> grid.rows, grid.dead.tolist()
    (((0,), (1,)), [[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    """

    steps: tuple[int, ...]
    rows: tuple[tuple[int, ...], ...]
    dead: np.ndarray
    near_dead: np.ndarray
    activity: np.ndarray

    @property
    def units(self) -> int:
        return sum(len(row) for row in self.rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LivenessMap):
            return NotImplemented
        return (self.steps, self.rows) == (other.steps, other.rows) and all(
            np.array_equal(getattr(self, name), getattr(other, name)) for name in ("dead", "near_dead", "activity")
        )

    __hash__ = None  # type: ignore[assignment]  # its arrays are not hashable


def unit_order(units: UnitsSeries) -> np.ndarray:
    """Unit indices in heatmap order: dead ones by the step they died, then revived, near-dead, the rest.

    >>> import numpy as np
    >>> from keras_relu_doctor.tags import UnitsMetadata
    >>> max_abs = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    >>> unit_order(UnitsSeries(np.arange(3), max_abs / 2, max_abs, UnitsMetadata(1e-6, "epoch"))).tolist()
    [1, 0, 2]
    """
    max_abs = units.max_abs_output
    count = max_abs.shape[1]
    dead = max_abs == 0
    near_dead = (max_abs > 0) & (max_abs <= units.metadata.tolerance)
    steps = np.arange(len(max_abs))[:, None]
    last_alive = np.where(~dead, steps, -1).max(axis=0)  # the unit died at the next step
    first_dead = np.where(dead, steps, len(max_abs)).min(axis=0)
    group = np.select([dead[-1], dead.any(axis=0), near_dead.any(axis=0)], [0, 1, 2], 3)
    when = np.select([group == 0, group == 1], [last_alive, first_dead], 0)
    activity = np.nan_to_num(units.active_fraction).mean(axis=0)
    return np.lexsort((np.arange(count), activity, when, group))


def _columns(count: int, limit: int = HEATMAP_COLUMNS) -> np.ndarray:
    if count <= limit:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, limit)).astype(int))


def _bands(order: np.ndarray, limit: int = HEATMAP_ROWS) -> list[np.ndarray]:
    return [band for band in np.array_split(order, min(limit, len(order))) if len(band)]


def _shares(matrix: np.ndarray, bands: list[np.ndarray]) -> np.ndarray:
    """Each band's mean over its units, per step, rounded to 3 decimals: ``[bands, steps]``."""
    if not bands:
        return np.zeros((0, len(matrix)))
    return np.round(np.stack([matrix[:, band].mean(axis=1) for band in bands]), 3)


def liveness_map(units: UnitsSeries, *, rows: int = HEATMAP_ROWS, columns: int = HEATMAP_COLUMNS) -> LivenessMap:
    """The heatmap of ``units`` with at most ``rows`` rows and ``columns`` steps."""
    kept = _columns(len(units.steps), columns)
    max_abs = units.max_abs_output[kept]
    dead = max_abs == 0
    near_dead = (max_abs > 0) & (max_abs <= units.metadata.tolerance)
    activity = np.nan_to_num(units.active_fraction[kept])
    bands = _bands(unit_order(units), rows) if units.units else []
    return LivenessMap(
        steps=tuple(int(step) for step in units.steps[kept]),
        rows=tuple(tuple(int(unit) for unit in band) for band in bands),
        dead=_shares(dead, bands),
        near_dead=_shares(near_dead, bands),
        activity=_shares(activity, bands),
    )

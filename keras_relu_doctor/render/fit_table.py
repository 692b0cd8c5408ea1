"""Tables that fit a terminal: columns dropped in a stated order, never squeezed below their words.

The replay's tables have more columns than 80 characters hold. Rather than let
``rich`` fold ``healthy`` into one letter per line, the columns that matter
least go first (``DROP_ORDER``), long setting names are cut in the middle, and
the terminal says which columns went (the markdown file keeps them all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keras_relu_doctor.render.names import shorten_unique

# Least important first, over every replay table: numbers the verdict or result
# already sums up go before the columns that say what happened.
DROP_ORDER = (
    "numbers",
    "baseline",
    "val loss",
    "train loss",
    "seeds",
    "dead ep 1",
    "last/stem grad, orders",
    "near-dead",
    "val acc",
    "pooled zeros",
    "first death",
    "deaths at spikes",
    "head",
    "gradients",
    "vanishing up to",
)
# Long prose: wrapped at word boundaries, at least this wide.
WRAPPING = {"article's claim": 24, "the article's finding": 24, "numbers": 24}
LONGEST_WORD = 30  # a longer word in prose (a slash-joined list) is folded rather than widen its column
FIRST_COLUMN_MIN = 12  # the setting names are cut in the middle before they get narrower than this


@dataclass(frozen=True)
class FittedTable:
    """The columns kept (their indices), the rows with the first column cut to fit, the columns dropped,
    and each kept column's width (the table fits when laid out with exactly these)."""

    kept: tuple[int, ...]
    rows: tuple[tuple[str, ...], ...]
    dropped: tuple[str, ...]
    widths: tuple[int, ...]


def _min_width(header: str, cells: Sequence[str]) -> int:
    if header in WRAPPING:
        words = [word for cell in cells for word in cell.split()]
        return max(WRAPPING[header], *(min(len(word), LONGEST_WORD) for word in words)) if words else WRAPPING[header]
    return max([len(word) for word in header.split()] + [len(cell) for cell in cells])


def table_width(widths: Sequence[int]) -> int:
    """Characters a rich table with box borders and one space of padding takes for these column widths.

    >>> table_width([5, 3])
    15
    """
    return sum(widths) + 3 * len(widths) + 1


def fit_table(columns: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> FittedTable:
    """Which columns fit in ``width`` characters, dropping ``DROP_ORDER`` first; the first column is
    cut in the middle if it still does not fit.

    >>> fitted = fit_table(["setting", "numbers", "verdict"], [["relu-d3", "a b c", "healthy"]], 30)
    >>> fitted.kept, fitted.dropped
    ((0, 2), ('numbers',))
    """
    cells = [[str(row[index]) for row in rows] for index in range(len(columns))]
    minimum = [_min_width(header, column) for header, column in zip(columns, cells)]
    kept = list(range(len(columns)))
    for name in DROP_ORDER:
        if table_width([minimum[index] for index in kept]) <= width:
            break
        if name in columns and columns.index(name) in kept and len(kept) > 2:
            kept.remove(columns.index(name))
    fitted_rows = [tuple(str(row[index]) for index in kept) for row in rows]
    others = table_width([minimum[index] for index in kept[1:]]) + 3
    first_width = max(FIRST_COLUMN_MIN, width - others)
    if kept and kept[0] == 0 and minimum[0] > first_width:
        short = shorten_unique(cells[0], first_width)
        fitted_rows = [(short[row[0]], *row[1:]) for row in fitted_rows]
        minimum[0] = max(len(columns[0]), *(len(row[0]) for row in fitted_rows)) if fitted_rows else len(columns[0])
    widths = _spread([minimum[index] for index in kept], [_natural(columns[index], cells[index]) for index in kept], width)
    return FittedTable(
        kept=tuple(kept),
        rows=tuple(fitted_rows),
        dropped=tuple(name for index, name in enumerate(columns) if index not in kept),
        widths=tuple(widths),
    )


def _natural(header: str, cells: Sequence[str]) -> int:
    return max([len(header)] + [len(cell) for cell in cells])


def _spread(minimum: list[int], natural: list[int], width: int) -> list[int]:
    """Column widths from their minimums, the room left given in turn to each column up to its natural width.

    >>> _spread([4, 10], [9, 40], 30)
    [9, 14]
    """
    widths = list(minimum)
    room = width - table_width(widths)
    for index, want in enumerate(natural):
        grow = max(0, min(room, want - widths[index]))
        widths[index] += grow
        room -= grow
    return widths

"""Tables that fit a terminal: columns dropped in a stated order, never squeezed below their words.

The replay's tables have more columns than 80 characters hold. Rather than let
``rich`` fold ``healthy`` into one letter per line, each table names the columns
that matter least, in order (its drop order: ``replay.summary.SETTING_DROP_ORDER``
and the like, each following ``DROP_ORDER``), and those go first; long setting
names are cut in the middle only once nothing else can go. Headers break between
words, prose (a claim, its numbers) between words or after a slash, in columns
sized so the rows stay short. The terminal says which columns went (the markdown
file keeps them all).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from keras_relu_doctor.render.names import shorten_unique

# Every replay table's columns that may go, least important first: numbers the verdict or
# result already sums up go before the columns that say what happened. Each table's own
# drop order (in its summary module) lists its columns in this order.
DROP_ORDER = (
    "numbers",
    "seeds",
    "baseline",
    "val loss",
    "train loss",
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
# Long prose: wrapped between words (or after a slash), at least this wide.
WRAPPING = {"article's claim": 24, "the article's finding": 24, "numbers": 24}
LONGEST_PIECE = 30  # a longer word of prose is broken after a slash (else folded) rather than widen its column
FIRST_COLUMN_MIN = 12  # the setting names are cut in the middle before they get narrower than this
FOLDED_MIN = 4  # on a terminal too narrow for the kept columns' words, no column is folded narrower than this


@dataclass(frozen=True)
class FittedTable:
    """The columns kept (their indices) with their headers broken between words, the rows (first column
    cut to fit, prose wrapped into lines), the columns dropped, and each kept column's width (the table
    fits when laid out with exactly these)."""

    kept: tuple[int, ...]
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    dropped: tuple[str, ...]
    widths: tuple[int, ...]


SLASH = re.compile(r"(?<=/)(?=[^\s/])")  # a place to break a long slash-joined word


class _ProseWrapper(textwrap.TextWrapper):
    """Breaks lines between words, and after a slash inside a word too long for the line
    (``he_normal/he_uniform/...``; never ``n/a`` or ``1/2``)."""

    def _split(self, text: str) -> list[str]:
        chunks = [chunk for chunk in re.split(r"(\s+)", text) if chunk]
        return [piece for chunk in chunks for piece in (SLASH.split(chunk) if len(chunk) > self.width else [chunk])]


def wrap_prose(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between words, or after a slash.

    >>> wrap_prose("ReLU with he_normal/he_uniform/lecun_normal: slight, n/a", 22)
    ['ReLU with he_normal/', 'he_uniform/', 'lecun_normal: slight,', 'n/a']
    """
    return _ProseWrapper(width).wrap(text) or [""]


def _longest_piece(word: str) -> int:
    """The room a word of prose needs: whole up to ``LONGEST_PIECE``, else its longest slash-joined part."""
    pieces = [word] if len(word) <= LONGEST_PIECE else SLASH.split(word)
    return min(LONGEST_PIECE, max(map(len, pieces)))


def _min_width(header: str, cells: Sequence[str]) -> int:
    words = [len(word) for word in header.split()]
    if header in WRAPPING:
        return max(WRAPPING[header], *words, *(_longest_piece(word) for cell in cells for word in cell.split()))
    return max(words + [len(cell) for cell in cells])


def _natural(header: str, cells: Sequence[str]) -> int:
    return max([len(header)] + [len(cell) for cell in cells])


def table_width(widths: Sequence[int]) -> int:
    """Characters a rich table with box borders and one space of padding takes for these column widths.

    >>> table_width([5, 3])
    15
    """
    return sum(widths) + 3 * len(widths) + 1


def fit_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], width: int, drop_order: Sequence[str] = DROP_ORDER
) -> FittedTable:
    """Which columns fit in ``width`` characters, dropping those of ``drop_order`` first, in its order;
    the first column is cut in the middle if the table still does not fit.

    >>> fitted = fit_table(["setting", "numbers", "verdict"], [["relu-d3", "a b c", "healthy"]], 30, ["numbers"])
    >>> fitted.kept, fitted.dropped, fitted.rows
    ((0, 2), ('numbers',), (('relu-d3', 'healthy'),))
    """
    cells = [[str(row[index]) for row in rows] for index in range(len(columns))]
    minimum = [_min_width(header, column) for header, column in zip(columns, cells)]
    kept = list(range(len(columns)))
    for name in drop_order:
        if table_width([minimum[index] for index in kept]) <= width:
            break
        if name in columns and columns.index(name) in kept:
            kept.remove(columns.index(name))
    first_width = max(FIRST_COLUMN_MIN, width - table_width([minimum[index] for index in kept[1:]]) - 3)
    if kept and kept[0] == 0 and minimum[0] > first_width:
        short = shorten_unique(cells[0], first_width)
        cells[0] = [short[cell] for cell in cells[0]]
        minimum[0] = _natural(columns[0], cells[0])
    prose = [cells[index] if columns[index] in WRAPPING else None for index in kept]
    # Folding starts once the names are cut: the names go no narrower, the other columns down to FOLDED_MIN.
    floors = [FIRST_COLUMN_MIN if index == 0 else FOLDED_MIN for index in kept]
    least = _squeeze([minimum[index] for index in kept], width, floors)
    widths = _spread([columns[index] for index in kept], least, [_natural(columns[index], cells[index]) for index in kept],
                     prose, width)  # fmt: skip
    return FittedTable(
        kept=tuple(kept),
        headers=tuple(textwrap.fill(columns[index], size) for index, size in zip(kept, widths)),
        rows=tuple(
            tuple(cells[index][row] if text is None else "\n".join(wrap_prose(text[row], size))
                  for index, text, size in zip(kept, prose, widths))  # fmt: skip
            for row in range(len(rows))
        ),
        dropped=tuple(name for index, name in enumerate(columns) if index not in kept),
        widths=tuple(widths),
    )


def _header_width(header: str, lines: int) -> int:
    """The narrowest a header goes on at most ``lines`` lines, broken between words.

    >>> _header_width("last/stem grad, orders", 2)
    12
    """
    return next(size for size in range(1, len(header) + 2) if len(textwrap.wrap(header, size)) <= lines)


def _squeeze(widths: list[int], width: int, floors: Sequence[int]) -> list[int]:
    """Below the narrowest the kept columns' words allow, the widest column loses a character at a time
    (its cells fold), down to its floor: a table that still fits beats one rich collapses at random.

    >>> _squeeze([12, 4, 4, 10], 40, [12, 4, 4, 4])  # cut names, died, dead last, verdict
    [12, 4, 4, 7]
    >>> _squeeze([1, 24, 14], 40, [4, 4, 4])
    [1, 15, 14]
    """
    widths = list(widths)
    while table_width(widths) > width:
        shrinkable = [index for index, size in enumerate(widths) if size > floors[index]]
        if not shrinkable:
            break
        widths[max(shrinkable, key=lambda index: widths[index])] -= 1
    return widths


def _spread(
    headers: Sequence[str], minimum: list[int], natural: list[int], prose: list[list[str] | None], width: int
) -> list[int]:
    """Column widths from their minimums. The room left goes first to the columns other than prose: the
    fewest header lines, then whole headers for as many columns as can be; then to the prose columns
    (their cells, else None), shared so that the rows are shortest, then so that there are fewest lines.

    >>> _spread(["deaths at spikes", "pooled zeros"], [6, 6], [16, 12], [None, None], 30)  # 2 header lines
    [9, 12]
    >>> _spread(["a", "b"], [24, 24], [60, 120], [["a " * 30], ["b " * 60]], 80)  # both cells on 3 lines
    [29, 44]
    """
    widths = list(minimum)
    fixed = [index for index, cells in enumerate(prose) if cells is None]
    for lines in range(1, max((len(headers[index].split()) for index in fixed), default=0) + 1):
        wanted = [max(size, _header_width(headers[index], lines)) if index in fixed else size
                  for index, size in enumerate(widths)]  # fmt: skip
        if table_width(wanted) <= width:
            widths = wanted
            break
    room = width - table_width(widths)
    for index in sorted(fixed, key=lambda index: natural[index] - widths[index]):
        if 0 < natural[index] - widths[index] <= room:
            room -= natural[index] - widths[index]
            widths[index] = natural[index]
    wrapping = [index for index, cells in enumerate(prose) if cells is not None]
    if not wrapping or room <= 0:
        return widths
    lines: dict[tuple[int, int], list[int]] = {}

    def score(grown: tuple[int, ...]) -> tuple[int, int]:
        counts = []
        for index, grow in zip(wrapping, grown):
            size = widths[index] + grow
            counts.append(lines.setdefault((index, size), [len(wrap_prose(cell, size)) for cell in prose[index] or ()]))
        return sum(map(max, zip(*counts))), sum(map(sum, counts))

    best = min(_shares(room, [natural[index] - widths[index] for index in wrapping]), key=score)
    for index, grow in zip(wrapping, best):
        widths[index] += grow
    return widths


def _shares(room: int, caps: Sequence[int]) -> list[tuple[int, ...]]:
    """Every way to give ``room`` (or all the ``caps`` take, if less) to columns taking up to ``caps`` each.

    >>> _shares(2, [1, 5])
    [(0, 2), (1, 1)]
    """
    room = min(room, sum(caps))
    if len(caps) == 1:
        return [(room,)]
    rest = sum(caps[1:])
    return [(first, *others) for first in range(max(0, room - rest), min(caps[0], room) + 1)
            for others in _shares(room - first, caps[1:])]  # fmt: skip


def left_out_note(dropped: Sequence[str], width: int, where: str) -> str:
    """The line under a table that lost columns: which (quoted: a name may hold a comma), and where they are.

    >>> left_out_note(("seeds", "last/stem grad, orders"), 80, "logs/summary.md")
    'Left out to fit 80 columns: "seeds", "last/stem grad, orders"; logs/summary.md has every column.'
    """
    names = ", ".join(f'"{name}"' for name in dropped)
    return f"Left out to fit {width} columns: {names}; {where} has every column."

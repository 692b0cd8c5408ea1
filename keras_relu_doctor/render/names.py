"""Layer names that fit a column: nested prefixes said once, long names shortened in the middle.

Keras names repeat their model's prefix on every nested layer
(``mobilenetv2_1.00_32/block_13_expand_BN``) and differ at both ends
(``block_13_depthwise`` against ``block_13_depthwise_BN``), so the terminal
report groups rows under their parent path and cuts long names in the middle,
keeping them unique.
"""

from __future__ import annotations

from typing import Iterable, Iterator

ELLIPSIS = "…"


def shorten_middle(name: str, width: int, head: int | None = None) -> str:
    """``name`` in at most ``width`` characters, its middle replaced by ``…``.

    ``head`` characters are kept from the start (by default a little under
    half, since layer names end in the part that tells them apart).

    >>> shorten_middle("block_13_depthwise_relu", 16)
    'block_1…ise_relu'
    """
    if len(name) <= width:
        return name
    if width <= 1:
        return ELLIPSIS[:width]
    kept = width - 1
    head = (kept - 1) // 2 if head is None else max(0, min(head, kept))
    return name[:head] + ELLIPSIS + name[len(name) - (kept - head) :]


def shorten_unique(names: Iterable[str], width: int) -> dict[str, str]:
    """Each name shortened to ``width`` characters, no two alike where that can be helped.

    Names that would collide try other cuts (more of the start, then less);
    names that stay alike whatever the cut are kept whole.

    >>> short = shorten_unique(["block_13_expand_relu", "block_14_expand_relu"], 12)
    >>> short["block_13_expand_relu"] != short["block_14_expand_relu"], max(map(len, short.values())) <= 12
    (True, True)
    """
    names = list(dict.fromkeys(names))
    short = {name: shorten_middle(name, width) for name in names}
    for _ in range(2):
        clashes = _clashing(short)
        if not clashes:
            break
        differ = _first_difference(clashes)
        for name in clashes:
            for head in _heads(width, preferred=differ + 2):
                candidate = shorten_middle(name, width, head)
                if candidate not in short.values():
                    short[name] = candidate
                    break
    for name in _clashing(short):
        short[name] = name
    return short


def _first_difference(names: list[str]) -> int:
    """Where names that cut alike first differ: a cut that keeps this much of the start tells them apart."""
    first = min(names)
    last = max(names)
    return next((index for index, (a, b) in enumerate(zip(first, last)) if a != b), min(len(first), len(last)))


def _clashing(short: dict[str, str]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for name, shown in short.items():
        seen.setdefault(shown, []).append(name)
    return [name for group in seen.values() if len(group) > 1 for name in group if short[name] != name]


def _heads(width: int, preferred: int) -> Iterator[int]:
    """Cuts to try: the one keeping ``preferred`` characters of the start first, then nearer the middle."""
    kept = width - 1
    if 0 <= preferred <= kept - 3:
        yield preferred
    middle = (kept - 1) // 2
    for offset in range(1, kept):
        for head in (middle + offset, middle - offset):
            if 0 <= head <= kept:
                yield head


def parent(name: str) -> str:
    """The nested-model prefix of a layer path, with its slash; ``""`` at the top level.

    >>> parent("mobilenetv2_1.00_32/block_1_expand"), parent("dense")
    ('mobilenetv2_1.00_32/', '')
    """
    head, slash, _ = name.rpartition("/")
    return head + slash


def grouped(names: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Consecutive names sharing a parent path, as ``(parent, leaf names)`` groups.

    >>> grouped(["m/conv", "m/bn", "pool", "dense"])
    [('m/', ['conv', 'bn']), ('', ['pool', 'dense'])]
    """
    groups: list[tuple[str, list[str]]] = []
    for name in names:
        prefix = parent(name)
        if not groups or groups[-1][0] != prefix:
            groups.append((prefix, []))
        groups[-1][1].append(name[len(prefix) :])
    return groups

"""The report as one self-contained HTML file: inline CSS and SVG, no scripts, no fonts, no network.

The page opens on an overview: every run, worst first, with its verdict, its
problems, the layers the findings name and a link to its section. Each run's
section folds (``<details>``): runs with problems open, healthy runs and runs
without data closed. Inside: how the run was measured, the findings, each fix
once, the table of the layers with something to say and, per such layer, a
units x steps heatmap of which unit died when, the dead share and the gradient
norm over steps. Layers with nothing to say fold into one table with a
gradient sparkline each, so a 150-layer model's page stays short.
"""

from __future__ import annotations

import html
import math
from typing import Callable, Iterable, Sequence

from keras_relu_doctor.heatmap import LivenessMap
from keras_relu_doctor.render.common import (
    GRADIENT_LEGEND,
    LAYER_COLUMNS,
    STEP_WORDS,
    finding_layers,
    finding_place,
    fix_scope,
    layer_row,
    measurement_notes,
    noteworthy,
    runs_by_severity,
    severity_rank,
    unit_list,
)
from keras_relu_doctor.render.text_report import run_name
from keras_relu_doctor.report import LayerSummary, Report, RunReport

# Line plots: size, margins (room for tick labels and the axis title), text.
PLOT_WIDTH, PLOT_HEIGHT = 360, 150
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 50, 12, 10, 36
ZERO_BAND = 18  # px under a log axis where values of exactly 0 are drawn
X_TICKS = 7  # at most this many step labels on an x axis
LOG_TICKS = 6  # at most this many decade labels on a log axis
SHARE_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
POINTS_MARKED = 40  # series up to this long get a dot (with its value as tooltip) per step
# Heatmaps: the grid's width, a row's height (px) between these bounds, the room for unit labels.
HEATMAP_WIDTH, HEATMAP_HEIGHT = 300, 240
ROW_HEIGHT_MIN, ROW_HEIGHT_MAX = 4, 14
HEATMAP_LEFT = 104
ACTIVITY_LEVELS = 8  # live cells are shaded in this many steps of activity
# Sparklines of the folded layers: size, and at most this many points.
SPARK_WIDTH, SPARK_HEIGHT, SPARK_POINTS = 140, 22, 40
SMALL_RUN = 6  # a run with at most this many layers shows every layer's plots
FIXES_OPEN = 3  # fixes shown per run; the rest fold
NAMED_SHOWN = 4  # layers named per run in the overview; the rest counted

RANK_CLASSES = ("error", "warning", "healthy", "no_data")  # by common.severity_rank

DEAD_COLOUR, NEAR_DEAD_COLOUR = "#c62828", "#ef8a17"
LIVE_LOW, LIVE_HIGH = (236, 242, 248), (38, 94, 150)  # live cells: activity 0% to 100%
LINE_COLOUR = "#1f5f8b"

# Every rule is scoped to the page's <main class="rd">, so the page can also be shown inside a notebook.
STYLE = """
.rd{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;padding:0 1.5em;color:#1d1d1d;max-width:84em}
.rd h1{font-size:1.45em;margin:.2em 0 .4em}.rd h2{display:inline;font-size:1.1em;font-weight:600}.rd h3{font-size:1em;margin:1em 0 .3em}
.rd h4{font-size:.95em;margin:1em 0 .2em;font-weight:600}.rd a{color:#1f5f8b}.rd code{font-size:.95em}
.rd table{border-collapse:collapse;margin:.4em 0;display:block;overflow-x:auto;max-width:100%}
.rd td,.rd th{padding:.25em .8em .25em 0;text-align:left;border-bottom:1px solid #e3e3e3;vertical-align:top}
.rd th{font-weight:600;border-bottom:2px solid #ccc}.rd .counts{margin:.2em 0 .6em;color:#333}
.rd .verdict{font-weight:600;padding:0 .4em;border-radius:3px;white-space:nowrap}
.rd .verdict.error{color:#fff;background:#b3261e}.rd .verdict.warning{color:#4a3000;background:#f6c453}
.rd .verdict.healthy{color:#fff;background:#2e7d32}.rd .verdict.no_data{color:#444;background:#e0e0e0}
.rd .sev{font-weight:600}.rd .sev.error{color:#b3261e}.rd .sev.warning{color:#8a5a00}.rd .sev.info{color:#1f5f8b}
.rd details.run{border:1px solid #ddd;border-radius:6px;margin:.8em 0;padding:.3em .9em}
.rd details.run>summary{cursor:pointer;padding:.3em 0}.rd details.run[open]>summary{border-bottom:1px solid #eee;margin-bottom:.4em}
.rd .muted,.rd .notes{color:#555}.rd .notes{margin:.2em 0;padding-left:1.2em;font-size:.92em}.rd .warn{color:#8a5a00}
.rd .scope{color:#555;font-size:.9em}.rd .legend{color:#666;font-size:12px;margin:0 0 .4em}.rd .units{color:#444;font-size:.9em}
.rd .plots{display:flex;flex-wrap:wrap;gap:.4em 1.4em;align-items:flex-start}.rd figure{margin:0;max-width:100%}
.rd figure svg{max-width:100%;height:auto}.rd figcaption{font-size:12px;color:#444;max-width:360px}
.rd details.more>summary{cursor:pointer;color:#1f5f8b;margin:.8em 0 .3em}.rd svg text{font:11px system-ui,sans-serif;fill:#444}
.rd .grid{stroke:#e6e6e6;fill:none}.rd .axis{stroke:#999;fill:none}.rd .yl,.rd .end{text-anchor:end}.rd .xl,.rd .mid{text-anchor:middle}
.rd .zero{fill:#fdecea}.rd .line{fill:none;stroke-width:1.6}.rd td svg{vertical-align:middle}.rd td svg .line{stroke-width:1.2}
""" + f".rd .hm .d{{fill:{DEAD_COLOUR}}}.rd .hm .n{{fill:{NEAR_DEAD_COLOUR}}}.rd .line{{stroke:{LINE_COLOUR}}}.rd .dots{{fill:{LINE_COLOUR}}}\n"


def _e(text: object) -> str:
    return html.escape(str(text))


def _pct(share: float) -> str:
    return f"{share:.0%}"


def _step_word(run: RunReport) -> str:
    """What a step counts, as an axis title: ``epoch``, ``batch`` or ``step``."""
    return run.step_unit if run.step_unit in STEP_WORDS else "step"


# --- axes --------------------------------------------------------------------------------------------


def step_ticks(first: int, last: int, most: int = X_TICKS) -> list[int]:
    """Round step numbers to label an x axis from ``first`` to ``last``: multiples of 1, 2 or 5 x 10^k.

    >>> step_ticks(0, 5), step_ticks(0, 120), step_ticks(7, 7)
    ([0, 1, 2, 3, 4, 5], [0, 20, 40, 60, 80, 100, 120], [7])
    """
    span = last - first
    if span <= 0:
        return [first]
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            size = factor * magnitude
            if span // size + 1 <= most:
                return list(range(-(-first // size) * size, last + 1, size))
        magnitude *= 10


def _decade_label(exponent: int, plain: bool) -> str:
    return f"{10.0 ** exponent:g}" if plain else f"1e{exponent}"


def log_ticks(low: float, high: float, most: int = LOG_TICKS) -> tuple[float, float, list[tuple[float, str]]]:
    """The ends of a log axis (as log10) around the positive values ``low`` .. ``high``, and its ticks.

    Decades are labelled ``1e-3``, ``1e-2`` ... (plain numbers between 0.01 and 100); a range
    within one decade also gets ticks at 2 and 5 times it.

    >>> log_ticks(0.002, 0.3)[2]
    [(-3.0, '1e-3'), (-2.0, '1e-2'), (-1.0, '1e-1'), (0.0, '1e0')]
    >>> [label for _, label in log_ticks(0.2, 0.5)[2]]
    ['0.1', '0.2', '0.5', '1']
    """
    bottom, top = math.floor(math.log10(low)), math.ceil(math.log10(high))
    if top == bottom:
        top += 1
    plain = -2 <= bottom and top <= 2
    stride = max(1, math.ceil((top - bottom) / (most - 1)))
    ticks = [(float(k), _decade_label(k, plain)) for k in range(bottom, top + 1) if (k - bottom) % stride == 0]
    if top - bottom == 1:
        ticks[1:1] = [(math.log10(factor * 10.0**bottom), f"{factor * 10.0 ** bottom:g}") for factor in (2, 5)]
    return float(bottom), float(top), ticks


# --- line plots ----------------------------------------------------------------------------------------


class _Frame:
    """The pixel geometry of one line plot: steps to x, and the plotting area's edges."""

    def __init__(self, steps: Sequence[int], zero_band: bool) -> None:
        self.first, self.last = steps[0], steps[-1]
        self.left, self.right = PLOT_LEFT, PLOT_WIDTH - PLOT_RIGHT
        self.top, self.bottom = PLOT_TOP, PLOT_HEIGHT - PLOT_BOTTOM
        self.axis_bottom = self.bottom - ZERO_BAND if zero_band else self.bottom  # the log axis ends here

    def x(self, step: int) -> float:
        if self.last == self.first:
            return (self.left + self.right) / 2
        return self.left + (step - self.first) / (self.last - self.first) * (self.right - self.left)

    def y(self, fraction: float) -> float:
        """``fraction`` of the way up the axis (0 at its bottom)."""
        return self.axis_bottom - fraction * (self.axis_bottom - self.top)


def _polyline(points: list[tuple[float, float] | None]) -> str:
    """Line segments through ``points``, broken where one is None (a step not logged)."""
    runs, current = [], []
    for point in [*points, None]:
        if point is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(point)
    return "".join(
        f'<polyline class="line" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in run)}"/>'
        for run in runs
    )


def _dots(steps: Sequence[int], points: list[tuple[float, float] | None], labels: list[str], step_word: str) -> str:
    if len(steps) > POINTS_MARKED:
        return ""
    dots = "".join(
        f'<circle cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="2.6"><title>{step_word} {step}: {label}</title></circle>'
        for step, point, label in zip(steps, points, labels)
        if point is not None
    )
    return f'<g class="dots">{dots}</g>'


def _x_axis(frame: _Frame, step_word: str) -> str:
    """The x axis: its line, a tick and a label per round step number, and its title."""
    ticks = [(frame.x(step), step) for step in step_ticks(frame.first, frame.last)]
    marks = "".join(f"M{x:.1f} {frame.bottom}v4" for x, _ in ticks)
    labels = "".join(f'<text x="{x:.1f}" y="{frame.bottom + 15}">{step}</text>' for x, step in ticks)
    return (f'<path class="axis" d="M{frame.left} {frame.bottom}H{frame.right}{marks}"/><g class="xl">{labels}'
            f'<text x="{(frame.left + frame.right) / 2:.0f}" y="{PLOT_HEIGHT - 4}">{_e(step_word)}</text></g>')  # fmt: skip


def _y_axis(frame: _Frame, ticks: Iterable[tuple[float, str]]) -> str:
    """Grid lines across the plot at the heights ``y`` of ``ticks``, each labelled at the left."""
    ticks = list(ticks)
    lines = "".join(f"M{frame.left} {y:.1f}H{frame.right}" for y, _ in ticks)
    labels = "".join(f'<text x="{frame.left - 5}" y="{y + 4:.1f}">{_e(label)}</text>' for y, label in ticks)
    return f'<path class="grid" d="{lines}"/><g class="yl">{labels}</g>'


def _svg_open(width: int, height: int, title: str, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg"{klass} width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
            f' role="img"><title>{_e(title)}</title>')  # fmt: skip


def _empty_plot(title: str, message: str) -> str:
    return (_svg_open(PLOT_WIDTH, PLOT_HEIGHT, title)
            + f'<rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{PLOT_WIDTH - PLOT_LEFT - PLOT_RIGHT}"'
            f' height="{PLOT_HEIGHT - PLOT_TOP - PLOT_BOTTOM}" fill="#fafafa" stroke="#ddd"/>'
            f'<text class="mid" x="{PLOT_WIDTH / 2:.0f}" y="{PLOT_HEIGHT / 2:.0f}">{_e(message)}</text></svg>')  # fmt: skip


def share_plot(steps: Sequence[int], values: Sequence[float | None], *, title: str, step_word: str = "step") -> str:
    """A line plot of a share (0% .. 100%) over steps, as inline SVG; "not logged" without values.

    >>> page = share_plot((0, 1, 2), (0.0, 0.5, 1.0), title="dead share")
    >>> page.startswith("<svg") and ">100%<" in page and ">50%<" in page
    True
    """
    if not any(value is not None for value in values):
        return _empty_plot(title, "not logged")
    frame = _Frame(steps, zero_band=False)
    parts = [_svg_open(PLOT_WIDTH, PLOT_HEIGHT, title)]
    parts.append(_y_axis(frame, ((frame.y(share), _pct(share)) for share in SHARE_TICKS)))
    parts.append(_x_axis(frame, step_word))
    points = [None if value is None else (frame.x(step), frame.y(min(max(value, 0.0), 1.0))) for step, value in zip(steps, values)]
    labels = ["" if value is None else _pct(value) for value in values]
    parts += [_polyline(points), _dots(steps, points, labels, step_word), "</svg>"]
    return "".join(parts)


def log_plot(steps: Sequence[int], values: Sequence[float | None], *, title: str, step_word: str = "step") -> str:
    """A line plot of positive values over steps on a log10 axis with decade ticks, as inline SVG.

    A value of exactly 0 is drawn on a band marked ``0`` under the axis; "not logged" only
    where there is no value at all.

    >>> page = log_plot((0, 1, 2), (0.01, 0.0, 0.001), title="gradient norm")
    >>> 'class="zero"' in page and ">1e-3<" in page and "not logged" not in page
    True
    """
    known = [value for value in values if value is not None]
    if not known:
        return _empty_plot(title, "not logged")
    positive = [value for value in known if value > 0]
    has_zero = len(positive) < len(known)  # a norm is never negative; one that is would be drawn at 0
    frame = _Frame(steps, zero_band=has_zero)
    parts = [_svg_open(PLOT_WIDTH, PLOT_HEIGHT, title)]
    bottom, top, ticks = log_ticks(min(positive), max(positive)) if positive else (0.0, 1.0, [])
    parts.append(_y_axis(frame, ((frame.y((tick - bottom) / (top - bottom)), label) for tick, label in ticks)))
    if not positive:
        parts.append(f'<text class="mid" x="{(frame.left + frame.right) / 2:.0f}" y="{(frame.top + frame.axis_bottom) / 2 + 4:.0f}">'
                     "exactly 0 at every logged step</text>")  # fmt: skip
    zero_y = frame.bottom - ZERO_BAND / 2

    def place(value: float) -> float:
        return zero_y if value <= 0 else frame.y((math.log10(value) - bottom) / (top - bottom))

    if has_zero:
        parts.append(f'<rect class="zero" x="{frame.left}" y="{frame.axis_bottom + 3}" width="{frame.right - frame.left}"'
                     f' height="{ZERO_BAND - 6}"/><g class="yl"><text x="{frame.left - 5}" y="{zero_y + 4:.1f}">0</text></g>')  # fmt: skip
    parts.append(_x_axis(frame, step_word))
    points = [None if value is None else (frame.x(step), place(value)) for step, value in zip(steps, values)]
    labels = ["" if value is None else f"{value:.3g}" for value in values]
    parts += [_polyline(points), _dots(steps, points, labels, step_word), "</svg>"]
    return "".join(parts)


def sparkline(values: Sequence[float | None]) -> str:
    """A tiny log-scale line of the positive ``values`` (no axes; the range as tooltip) for a table cell;
    ``""`` without two of them.

    >>> sparkline((1.0, 0.1, 0.01)).startswith("<svg")
    True
    """
    kept = [(index, value) for index, value in enumerate(values) if value is not None and value > 0]
    if len(kept) < 2:
        return ""
    low, high = min(value for _, value in kept), max(value for _, value in kept)
    stride = math.ceil(len(kept) / SPARK_POINTS)
    kept = kept[::stride] if kept[-1] in kept[::stride] else [*kept[::stride], kept[-1]]
    bottom, span = math.log10(low), (math.log10(high) - math.log10(low)) or 1.0
    first, length = kept[0][0], (kept[-1][0] - kept[0][0]) or 1
    points = " ".join(f"{(index - first) / length * (SPARK_WIDTH - 2) + 1:.0f},"
                      f"{(1 - (math.log10(value) - bottom) / span) * (SPARK_HEIGHT - 4) + 2:.1f}" for index, value in kept)  # fmt: skip
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}"><title>first {kept[0][1]:.3g},'
            f' last {kept[-1][1]:.3g}, from {low:.3g} to {high:.3g}</title><polyline class="line" points="{points}"/></svg>')  # fmt: skip


# --- heatmap ------------------------------------------------------------------------------------------


def _blend(share: float) -> str:
    level = round(share * ACTIVITY_LEVELS) / ACTIVITY_LEVELS
    return "#" + "".join(f"{round(low + (high - low) * level):02x}" for low, high in zip(LIVE_LOW, LIVE_HIGH))


def _cell_look(dead: float, near_dead: float, activity: float) -> str:
    """The attributes that draw one cell: red for dead, orange for near-dead (faded by share), else blue by activity."""
    share, klass = (dead, "d") if dead > 0 and dead >= near_dead else (near_dead, "n") if near_dead > 0 else (0.0, "")
    if not klass:
        return f'fill="{_blend(activity)}"'
    opacity = round(0.35 + 0.65 * share, 1)
    return f'class="{klass}"' + (f' fill-opacity="{opacity:g}"' if opacity < 1 else "")


def _span(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return _pct(low) if _pct(low) == _pct(high) else f"{_pct(low)}-{_pct(high)}"


def _units_label(row: tuple[int, ...]) -> str:
    """A row's units for the y axis: ``unit 5``, ``units 4-7`` (a contiguous band), else the first two.

    >>> _units_label((5,)), _units_label((7, 4, 5, 6)), _units_label((9, 3, 12))
    ('unit 5', 'units 4-7', 'units 3, 9, …')
    """
    if len(row) == 1:
        return f"unit {row[0]}"
    ordered = sorted(row)
    if ordered[-1] - ordered[0] == len(row) - 1:
        return f"units {ordered[0]}-{ordered[-1]}"
    return f"units {ordered[0]}, {ordered[1]}, …"


def _heatmap_cells(liveness: LivenessMap, step_word: str) -> Iterable[str]:
    """One ``<rect>`` per run of neighbouring cells of a row that look alike, in grid units, with its tooltip."""
    steps = liveness.steps
    for r, row in enumerate(liveness.rows):
        looks = [_cell_look(*cell) for cell in zip(liveness.dead[r], liveness.near_dead[r], liveness.activity[r])]
        units = f"unit {row[0]}" if len(row) == 1 else f"units {unit_list(tuple(sorted(row)), limit=8)}"
        start = 0
        for end in range(1, len(steps) + 1):
            if end < len(steps) and looks[end] == looks[start]:
                continue
            when = f"{step_word} {steps[start]}" if end - start == 1 else f"{step_word}s {steps[start]}-{steps[end - 1]}"
            near = liveness.near_dead[r][start:end]
            tip = (f"{units}, {when}: dead {_span(liveness.dead[r][start:end])}"
                   + (f", near-dead {_span(near)}" if max(near) > 0 else "")
                   + f", active on {_span(liveness.activity[r][start:end])} of samples")  # fmt: skip
            yield f'<rect x="{start}" y="{r}" width="{end - start}" height="1" {looks[start]}><title>{_e(tip)}</title></rect>'
            start = end


def _heatmap_legend(y: float) -> str:
    swatch = '<rect x="{x}" y="{y}" width="12" height="10" {look}/><text x="{tx}" y="{ty}">{label}</text>'
    parts, x = [], HEATMAP_LEFT
    for look, label, width in ((f'fill="{DEAD_COLOUR}"', "dead", 48), (f'fill="{NEAR_DEAD_COLOUR}"', "near-dead", 80)):
        parts.append(swatch.format(x=x, y=y, look=look, tx=x + 16, ty=y + 9, label=label))
        x += width
    parts.append(f'<text x="{x}" y="{y + 9}">live: active 0%</text>')
    x += 92
    for level in range(0, ACTIVITY_LEVELS + 1, 2):
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{_blend(level / ACTIVITY_LEVELS)}"/>')
        x += 10
    parts.append(f'<text x="{x + 4}" y="{y + 9}">100%</text>')
    return "".join(parts)


def heatmap_svg(liveness: LivenessMap, *, title: str, step_word: str = "step") -> str:
    """The units x steps heatmap as inline SVG: rows of units (sorted by the step they died) down,
    steps across; dead cells red, near-dead orange, live ones shaded by activity; a tooltip per cell.

    >>> from keras_relu_doctor.heatmap import LivenessMap
    >>> grid = LivenessMap((0, 1), ((0,), (1,)), ((0.0, 1.0), (0.0, 0.0)), ((0.0, 0.0), (0.0, 0.0)), ((0.5, 0.0), (0.5, 0.5)))
    >>> page = heatmap_svg(grid, title="dense")
    >>> page.count('class="d"'), "unit 0, step 1: dead 100%" in page
    (1, True)
    """
    rows, columns = len(liveness.rows), len(liveness.steps)
    row_height = min(ROW_HEIGHT_MAX, max(ROW_HEIGHT_MIN, HEATMAP_HEIGHT // max(rows, 1)))
    grid_height, top = rows * row_height, 8
    width = HEATMAP_LEFT + HEATMAP_WIDTH + 16
    height = top + grid_height + 58
    parts = [_svg_open(width, height, title, "hm"),
             f'<svg x="{HEATMAP_LEFT}" y="{top}" width="{HEATMAP_WIDTH}" height="{grid_height}" viewBox="0 0 {columns} {rows}"'
             ' preserveAspectRatio="none" shape-rendering="crispEdges">', *_heatmap_cells(liveness, step_word), "</svg>",
             f'<rect x="{HEATMAP_LEFT}" y="{top}" width="{HEATMAP_WIDTH}" height="{grid_height}" fill="none" stroke="#999"/>']  # fmt: skip
    labels = {0: liveness.rows[0], rows - 1: liveness.rows[-1]} if rows else {}
    for r, row in labels.items():
        parts.append(f'<text class="end" x="{HEATMAP_LEFT - 5}" y="{top + (r + 0.5) * row_height + 4:.1f}">{_units_label(row)}</text>')
    if rows > 2:
        units, middle = liveness.units, top + grid_height / 2
        per_row = f", {'~' * (units % rows > 0)}{round(units / rows)} a row" if units > rows else ""
        parts.append(f'<text class="mid" x="12" y="{middle:.0f}" transform="rotate(-90 12 {middle:.0f})">'
                     f"{units} units{per_row}</text>")  # fmt: skip
    cell = HEATMAP_WIDTH / max(columns, 1)
    axis = top + grid_height
    ticks = [(HEATMAP_LEFT + (index + 0.5) * cell, liveness.steps[index]) for index in _tick_columns(liveness.steps)]
    parts.append(f'<path class="axis" d="{"".join(f"M{x:.1f} {axis}v4" for x, _ in ticks)}"/>')
    parts += [f'<text class="mid" x="{x:.1f}" y="{axis + 15}">{step}</text>' for x, step in ticks]
    parts.append(f'<text class="mid" x="{HEATMAP_LEFT + HEATMAP_WIDTH / 2:.0f}" y="{axis + 29}">{_e(step_word)}</text>')
    parts += [_heatmap_legend(axis + 40), "</svg>"]
    return "".join(parts)


def _tick_columns(steps: Sequence[int]) -> list[int]:
    """The columns to label: those whose steps are the round ticks, or evenly spaced ones when the steps are not even."""
    if not steps:
        return []
    wanted = set(step_ticks(steps[0], steps[-1]))
    chosen = [index for index, step in enumerate(steps) if step in wanted]
    if len(chosen) >= 2:
        return chosen
    count = min(len(steps), X_TICKS)
    return sorted({round(i * (len(steps) - 1) / max(count - 1, 1)) for i in range(count)})


def _liveness_line(layer: LayerSummary) -> str | None:
    """One line instead of a heatmap, for a layer whose units never died (None: draw the heatmap)."""
    grid = layer.liveness
    if grid is None:
        return "no per-unit records: no heatmap" + (", dead share estimated from activation histograms" if layer.dead_fraction is not None else "")
    if any(share > 0 for row in (*grid.dead, *grid.near_dead) for share in row):
        return None
    activity = [share for row in grid.activity for share in row]
    active = f" (active on {_span(activity)} of probe samples)" if activity else ""
    return f"all {grid.units} unit{'s' * (grid.units != 1)} live at every step{active}"


# --- sections -----------------------------------------------------------------------------------------


def _gradient_series(layer: LayerSummary) -> tuple[tuple[float | None, ...], str]:
    """The gradient norms to plot and what they are: the weights', or the output's for a weightless layer."""
    gaps = "; NaN or Inf left as gaps" if layer.grad_status == "nan" else ""
    if layer.grad_status == "no_weights":
        return layer.output_grad_norm_by_step, f"gradient norm of the layer's output (no weights; log{gaps})"
    return layer.grad_norm_by_step, f"gradient norm of the weights (log{gaps})"


def _layer_block(layer: LayerSummary, anchor: str, step_word: str) -> str:
    """One layer: its heatmap (or one line saying why there is none), its dead-share and gradient-norm curves, in a row."""
    line = _liveness_line(layer)
    heatmap = ""
    if line is None:
        drawn = heatmap_svg(layer.liveness, title=f"{layer.name}: which units died when", step_word=step_word)
        heatmap = f"<figure>{drawn}<figcaption>which units died when (rows: units, the first to die on top)</figcaption></figure>"
    dead = share_plot(layer.steps, layer.dead_fraction_by_step, title=f"{layer.name} dead share", step_word=step_word)
    estimated = "" if layer.per_unit else " (estimated from activation histograms)"
    values, what = _gradient_series(layer)
    gradient = log_plot(layer.steps, values, title=f"{layer.name} {what}", step_word=step_word)
    curves = (f"<figure>{dead}<figcaption>dead share of the units{estimated}</figcaption></figure>"
              f"<figure>{gradient}<figcaption>{_e(what)}</figcaption></figure>")  # fmt: skip
    said = f'<p class="muted">{_e(line)}</p>' if line else ""
    return (f'<div class="layer" id="{anchor}"><h4><code>{_e(layer.name)}</code> <span class="muted">{_e(layer.activation)}</span>'
            f'</h4>{said}<div class="plots">{heatmap}{curves}</div></div>')  # fmt: skip


def _layer_table(rows: list[tuple[str, list[str]]], extra: str = "") -> str:
    """A table of ``(anchor or "", cells)`` rows under ``LAYER_COLUMNS`` (and ``extra``, a last column)."""
    head = "".join(f"<th>{_e(column)}</th>" for column in (*LAYER_COLUMNS, *([extra] if extra else [])))
    body = []
    for anchor, cells in rows:
        first = f'<a href="#{anchor}"><code>{cells[0]}</code></a>' if anchor else f"<code>{cells[0]}</code>"
        body.append(f"<tr><td>{first}</td>" + "".join(f"<td>{cell}</td>" for cell in cells[1:]) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _layers(run: RunReport, anchor: str) -> list[str]:
    """The table and plots of the layers with something to say (all of a small model's); the others folded."""
    named = finding_layers(run)
    step_word = _step_word(run)
    opened = [len(run.layers) <= SMALL_RUN or noteworthy(layer, named) for layer in run.layers]
    shown = [(index, layer) for index, (layer, open_) in enumerate(zip(run.layers, opened)) if open_]
    folded = [layer for layer, open_ in zip(run.layers, opened) if not open_]
    count = len(run.layers)
    out = [f"<h3>Layers</h3><p>{count} layer{'s' * (count != 1)} measured"
           + (f"; {len(shown)} with something to say below, {len(folded)} folded" if folded else "") + "</p>"]  # fmt: skip
    if shown:
        out.append(_layer_table([(f"{anchor}-l{index}", [_e(cell) for cell in layer_row(layer)]) for index, layer in shown]))
        out.append(f'<p class="legend">{_e(GRADIENT_LEGEND)}</p>')
        out += [_layer_block(layer, f"{anchor}-l{index}", step_word) for index, layer in shown]
    if folded:
        rows = [("", [*(_e(cell) for cell in layer_row(layer)), sparkline(_gradient_series(layer)[0])]) for layer in folded]
        out.append(f'<details class="more"><summary>{len(folded)} more layer{"s" * (len(folded) != 1)} with nothing to say'
                   f" (no dead or near-dead unit, gradient ok)</summary>{_layer_table(rows, 'gradient norm over steps (log)')}</details>")  # fmt: skip
    return out


def _findings(run: RunReport) -> list[str]:
    """The findings, the verdict's first, then the other problems by severity, then the ``info`` ones."""
    order = {"error": 0, "warning": 1}
    ranked = sorted(run.findings, key=lambda finding: (order.get(finding.severity, 2), finding.kind != run.verdict))
    items = []
    for finding in ranked:
        place = finding_place(finding, lambda layer: f"<code>{_e(layer)}</code>")
        units = f'<div class="units">dead units: {_e(unit_list(finding.units, limit=32))}</div>' if finding.units else ""
        items.append(f'<li><span class="sev {_e(finding.severity)}">{_e(finding.severity)}</span> <b>{_e(finding.kind)}</b>'
                     f"{place}: {_e(finding.summary)}{units}</li>")  # fmt: skip
    return ["<h3>Findings</h3><ul>" + "".join(items) + "</ul>"] if items else []


def _fixes(run: RunReport) -> list[str]:
    """Each fix once, best first, with the layers and findings it answers; past ``FIXES_OPEN``, folded."""
    if not run.fixes:
        return []
    items = [f'<li>{_e(fix.text)} <span class="scope">{_e(fix_scope(fix))}</span></li>' for fix in run.fixes]
    out = f"<h3>Fixes, best first</h3><ol>{''.join(items[:FIXES_OPEN])}</ol>"
    if len(items) > FIXES_OPEN:
        rest = len(items) - FIXES_OPEN
        out += (f'<details class="more"><summary>{rest} more fix{"es" * (rest != 1)}</summary>'
                f'<ol start="{FIXES_OPEN + 1}">{"".join(items[FIXES_OPEN:])}</ol></details>')  # fmt: skip
    return [out]


def _verdict(run: RunReport) -> str:
    return f'<span class="verdict {RANK_CLASSES[severity_rank(run)]}">{_e(run.verdict)}</span>'


def _run_section(run: RunReport, anchor: str, logdir: str) -> str:
    also = [kind for kind in run.problems if kind != run.verdict]
    rank = severity_rank(run)
    summary = f"{_verdict(run)} <h2>{_e(run_name(run, logdir))}</h2>" + (f' <span class="muted">also {_e(", ".join(also))}</span>' if also else "")
    notes = measurement_notes(run)
    if run.step_unit:
        notes.insert(0, f"steps are {STEP_WORDS.get(run.step_unit, run.step_unit)}")
    out = [f'<details class="run" id="{anchor}"{" open" if rank < 2 else ""}><summary>{summary}</summary>']
    items = [f"<li>{_e(note)}</li>" for note in notes] + [f'<li class="warn">warning: {_e(warning)}</li>' for warning in run.warnings]
    if items:
        out.append(f'<ul class="notes">{"".join(items)}</ul>')
    out += _findings(run) + _fixes(run)
    out += _layers(run, anchor) if run.layers else ['<p class="muted">no layer measurements</p>']
    out.append('<p><a href="#overview">back to the overview</a></p></details>')
    return "\n".join(out)


def _named(run: RunReport) -> str:
    """The layers the run's problem findings name, in model order, the first few."""
    named = finding_layers(run, problems_only=True)
    ordered = [layer.name for layer in run.layers if layer.name in named] + sorted(named - {layer.name for layer in run.layers})
    shown = ", ".join(f"<code>{_e(name)}</code>" for name in ordered[:NAMED_SHOWN])
    return shown + (f" and {len(ordered) - NAMED_SHOWN} more" if len(ordered) > NAMED_SHOWN else "")


def _counts(runs: Sequence[RunReport]) -> str:
    """``12 runs: 4 with problems, 8 healthy, 0 without data``.

    >>> _counts(())
    '0 runs'
    """
    count = len(runs)
    line = f"{count} run{'s' * (count != 1)}"
    if not runs:
        return line
    problems = sum(1 for run in runs if run.problems)
    healthy = sum(1 for run in runs if run.verdict == "healthy")
    return f"{line}: {problems} with problems, {healthy} healthy, {count - problems - healthy} without data"


def _overview(ordered: list[RunReport], anchors: list[str], logdir: str) -> str:
    rows = "".join(
        f'<tr><td><a href="#{anchor}">{_e(run_name(run, logdir))}</a></td><td>{_verdict(run)}</td>'
        f'<td>{_e(", ".join(run.problems)) or "-"}</td><td>{_named(run) or "-"}</td></tr>'
        for run, anchor in zip(ordered, anchors)
    )
    return f'<table class="overview"><tr><th>run</th><th>verdict</th><th>problems</th><th>layers named</th></tr>{rows}</table>'


def render_html(report: Report) -> str:
    """The whole report as one HTML page: the overview, then a folding section per run, worst first.

    >>> from keras_relu_doctor.report import Report
    >>> page = render_html(Report(logdir="runs", runs=()))
    >>> "<script" in page, "0 runs" in page
    (False, True)
    """
    title = f"relu-doctor report of {report.logdir}"
    ordered = runs_by_severity(report.runs)
    anchors = [f"run-{index}" for index in range(len(ordered))]
    body = [f'<h1 id="overview">{_e(title)}</h1>', f'<p class="counts">{_e(_counts(ordered))}</p>']
    if ordered:
        body.append(_overview(ordered, anchors, report.logdir))
    body += [_run_section(run, anchor, report.logdir) for run, anchor in zip(ordered, anchors)]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f'<style>{STYLE}</style></head><body>\n<main class="rd">' + "\n".join(body) + "</main>\n</body></html>\n")  # fmt: skip

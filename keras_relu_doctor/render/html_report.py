"""The report as one self-contained HTML file: inline CSS and SVG plots, no scripts,
no fonts, no network, so a browser opens it offline.
"""

from __future__ import annotations

import html
import math

from keras_relu_doctor.render.common import (
    LAYER_COLUMNS,
    finding_place,
    fix_scope,
    layer_row,
    measurement_notes,
    run_heading,
    unit_list,
)
from keras_relu_doctor.report import LayerSummary, Report, RunReport

PLOT_WIDTH, PLOT_HEIGHT, MARGIN = 260, 90, 28
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;text-align:left;border-bottom:1px solid #ddd}
.healthy{color:#176f2c}.problem{color:#b00020}.no_data{color:#777}
.error{color:#b00020}.warning{color:#8a5a00}.info{color:#1f5f8b}.note{color:#555;margin:2px 0}
.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:.8em;color:#555}
svg text{font-size:9px;fill:#555}
"""


def _points(steps: tuple[int, ...], values: list[float | None], low: float, high: float) -> str:
    first, last = steps[0], steps[-1]
    span_x = (last - first) or 1
    span_y = (high - low) or 1.0
    coordinates = []
    for step, value in zip(steps, values):
        if value is None:
            continue
        x = MARGIN + (step - first) / span_x * (PLOT_WIDTH - MARGIN - 4)
        y = 4 + (1 - (value - low) / span_y) * (PLOT_HEIGHT - 18)
        coordinates.append(f"{x:.1f},{y:.1f}")
    return " ".join(coordinates)


def svg_plot(steps: tuple[int, ...], values: tuple[float | None, ...], *, title: str, log: bool = False) -> str:
    """A small line plot of ``values`` over ``steps`` as inline SVG (log10 y axis with ``log``).

    >>> svg_plot((0, 1), (0.0, 1.0), title="dead fraction").startswith("<svg")
    True
    """
    shown = [math.log10(v) if (log and v is not None and v > 0) else (None if log else v) for v in values]
    known = [v for v in shown if v is not None]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" role="img">',
             f"<title>{html.escape(title)}</title>",
             f'<rect x="{MARGIN}" y="4" width="{PLOT_WIDTH - MARGIN - 4}" height="{PLOT_HEIGHT - 18}" fill="#fafafa" stroke="#ccc"/>']  # fmt: skip
    if known and steps:
        low, high = (min(known), max(known)) if log else (min(0.0, min(known)), max(1.0, max(known)))
        label = (lambda v: f"1e{v:.0f}") if log else (lambda v: f"{v:g}")
        parts.append(f'<polyline fill="none" stroke="#1f5f8b" stroke-width="1.5" points="{_points(steps, shown, low, high)}"/>')
        parts.append(f'<text x="2" y="12">{label(high)}</text><text x="2" y="{PLOT_HEIGHT - 14}">{label(low)}</text>')
        parts.append(f'<text x="{MARGIN}" y="{PLOT_HEIGHT - 3}">step {steps[0]}</text>')
        parts.append(f'<text x="{PLOT_WIDTH - 50}" y="{PLOT_HEIGHT - 3}">{steps[-1]}</text>')
    else:
        parts.append(f'<text x="{MARGIN + 8}" y="{PLOT_HEIGHT // 2}">not logged</text>')
    parts.append("</svg>")
    return "".join(parts)


def _layer_plots(layer: LayerSummary) -> str:
    dead = svg_plot(layer.steps, layer.dead_fraction_by_step, title=f"{layer.name} dead fraction")
    grad = svg_plot(layer.steps, layer.grad_norm_by_step, title=f"{layer.name} gradient norm", log=True)
    caption = html.escape(layer.name)
    return (f"<figure>{dead}<figcaption>{caption}: dead fraction</figcaption></figure>"
            f"<figure>{grad}<figcaption>{caption}: gradient norm (log)</figcaption></figure>")  # fmt: skip


def _run_section(run: RunReport) -> str:
    css = "healthy" if run.verdict == "healthy" else "no_data" if run.verdict == "no_data" else "problem"
    out = [f'<section><h2 class="{css}">{html.escape(run_heading(run))}</h2>']
    out += [f'<p class="note">{html.escape(note)}</p>' for note in measurement_notes(run)]
    out += [f'<p class="warning">warning: {html.escape(warning)}</p>' for warning in run.warnings]
    if run.layers:
        out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in LAYER_COLUMNS) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in layer_row(layer)) + "</tr>" for layer in run.layers]
        out.append("</table>")
    for finding in run.findings:
        place = finding_place(finding, lambda layer: f"<code>{html.escape(layer)}</code>")
        out.append(f'<h3 class="{finding.severity}">{finding.kind}{place}</h3><p>{html.escape(finding.summary)}</p>')
        if finding.units:
            out.append(f"<p>dead units: {html.escape(unit_list(finding.units, limit=64))}</p>")
    if run.fixes:
        out.append("<h3>Fixes, best first</h3><ol>")
        out += [f"<li>{html.escape(fix.text)} <small>{html.escape(fix_scope(fix))}</small></li>" for fix in run.fixes]
        out.append("</ol>")
    if run.layers:
        out.append('<div class="plots">' + "".join(_layer_plots(layer) for layer in run.layers) + "</div>")
    out.append("</section>")
    return "\n".join(out)


def render_html(report: Report) -> str:
    """The whole report as an HTML page.

    >>> from keras_relu_doctor.report import Report
    >>> "<script" in render_html(Report(logdir="runs", runs=()))
    False
    """
    title = f"relu-doctor report of {report.logdir}"
    body = "\n".join(_run_section(run) for run in report.runs)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")  # fmt: skip

"""The HTML report's structure: overview order, folding, zero gradients, heatmap cells, escaping, size.

The real runs come from two tiny Keras models trained with ``ReluDoctor``: one
that dies at once (negative weights on negative inputs) and a healthy one.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from keras_relu_doctor.diagnose.findings import Finding
from keras_relu_doctor.events.series import UnitsSeries
from keras_relu_doctor.heatmap import LivenessMap, liveness_map
from keras_relu_doctor.render import render_html
from keras_relu_doctor.render.html_report import log_plot, log_ticks, share_plot
from keras_relu_doctor.report import LayerSummary, Report, RunFix, RunReport, build_report
from keras_relu_doctor.tags import UnitsMetadata

HEALTHY_RUN, DYING_RUN = "a_healthy/train", "b_dying/train"  # path order puts the healthy run first
EPOCHS, SAMPLES, PROBE = 3, 128, 64
BIG_MODEL_LAYERS = 150
# Pages of a 150-layer model, 120 steps, 64 units a layer: measured 207 kB with two layers losing units
# (two 64x120 heatmaps, 148 layers folded), 95 kB healthy (all 150 folded, a sparkline each).
BIG_PAGE_BUDGET, HEALTHY_BIG_PAGE_BUDGET = 250_000, 120_000


def trained_runs(tmp_path_factory) -> Path:
    """The logdir with ``a_healthy/train`` and ``b_dying/train``, trained with ReluDoctor on the first call
    of the session (the browser test shares it)."""
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.getbasetemp() / "html_report_runs"
    root.mkdir(exist_ok=True)
    if not (root / "done").exists():
        _train(root)
    return root


def _train(root: Path) -> None:
    import keras

    from keras_relu_doctor import ReluDoctor

    rng = np.random.default_rng(0)
    negative = rng.uniform(-1.0, 0.0, (SAMPLES, 4)).astype("float32")
    centred = rng.normal(size=(SAMPLES, 4)).astype("float32")
    dying_init = keras.initializers.RandomUniform(-1.0, 0.0)
    for name, x, initializer, depth in ((DYING_RUN, negative, dying_init, 3), (HEALTHY_RUN, centred, "he_normal", 2)):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        hidden = [keras.layers.Dense(16, activation="relu", kernel_initializer=initializer, name=f"dense_{i + 1}") for i in range(depth)]
        model = keras.Sequential([keras.Input((4,)), *hidden, keras.layers.Dense(1, name="output")])
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        y = x.sum(axis=1, keepdims=True)
        callback = ReluDoctor(str(root / name.split("/")[0]), probe_data=(x[:PROBE], y[:PROBE]), on_dead="ignore")
        model.fit(x, y, epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[callback])
    (root / "done").touch()


@pytest.fixture(scope="session")
def trained_report(tmp_path_factory) -> Report:
    return build_report(trained_runs(tmp_path_factory))


class Tags(HTMLParser):
    """Every start tag as ``(tag, attributes)``, in order."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _section(page: str, anchor: str) -> str:
    start = page.index(f'<details class="run" id="{anchor}"')
    return page[start : page.index("back to the overview", start)]


def _layer_block(section: str, name: str) -> str:
    start = section.index(f"<h4><code>{name}</code>")
    end = section.find('<div class="layer"', start)
    return section[start : end if end > 0 else len(section)]


def test_overview_lists_the_dying_run_before_the_healthy_one(trained_report):
    page = render_html(trained_report)
    assert trained_report.run(DYING_RUN).verdict == "dying_relu" and trained_report.run(HEALTHY_RUN).verdict == "healthy"
    assert "2 runs: 1 with problems, 1 healthy, 0 without data" in page
    overview = page[page.index('<table class="overview">') : page.index("</table>")]
    rows = re.findall(r'<tr><td><a href="#(run-\d)">([^<]+)</a></td><td><span class="verdict (\w+)">(\w+)</span>', overview)
    assert rows == [("run-0", DYING_RUN, "error", "dying_relu"), ("run-1", HEALTHY_RUN, "healthy", "healthy")]
    # The layers the findings name are listed, and each link lands on its run's section.
    assert "<code>dense" in overview.split("</tr>")[1]
    assert f"<h2>{DYING_RUN}</h2>" in _section(page, "run-0") and f"<h2>{HEALTHY_RUN}</h2>" in _section(page, "run-1")


def test_runs_with_problems_open_and_healthy_ones_fold(trained_report):
    runs = {attrs["id"]: "open" in attrs for tag, attrs in Tags(render_html(trained_report)).tags if tag == "details" and attrs.get("class") == "run"}
    assert runs == {"run-0": True, "run-1": False}


def test_a_zero_gradient_norm_is_drawn_as_zero_not_as_missing(trained_report):
    dying = trained_report.run(DYING_RUN)
    zero = [layer for layer in dying.layers if layer.grad_norm_by_step and set(layer.grad_norm_by_step) == {0.0}]
    assert zero, [(layer.name, layer.grad_norm_by_step) for layer in dying.layers]  # the dead layers' weights get exactly 0
    section = _section(render_html(trained_report), "run-0")
    for layer in zero:
        plot = _layer_block(section, layer.name).split("<svg")[-1]  # the gradient plot is the layer's last
        assert 'class="zero"' in plot and "not logged" not in plot and ">0</text>" in plot
        dots = re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"[^>]*><title>epoch \d+: 0</title>', plot)
        assert len(dots) == len(layer.steps) and len(set(dots)) == 1  # every step, on the zero band


def test_zero_missing_and_positive_values_on_the_log_axis():
    mixed = log_plot((0, 1, 2, 3), (0.1, 0.0, None, 0.001), title="norm")
    assert 'class="zero"' in mixed and "not logged" not in mixed
    assert [label for label in re.findall(r"<text x=\"45\" y=\"[\d.]+\">([^<]+)</text>", mixed)] == ["1e-3", "1e-2", "1e-1", "0"]
    assert len(re.findall(r"<title>step \d: ", mixed)) == 3  # the missing step has no dot, and breaks the line
    assert mixed.count("<polyline") == 2
    assert "not logged" in log_plot((0, 1), (None, None), title="norm")
    assert "exactly 0 at every logged step" in log_plot((0, 1), (0.0, 0.0), title="norm")
    assert 'class="zero"' not in log_plot((0, 1), (0.5, 0.2), title="norm")
    assert ">100%<" in share_plot((0, 1), (0.0, 1.0), title="dead") and "not logged" in share_plot((0,), (None,), title="dead")


def test_log_ticks_are_decades_or_steps_within_one_decade():
    assert [label for _, label in log_ticks(3e-4, 2e-2)[2]] == ["1e-4", "1e-3", "1e-2", "1e-1"]
    assert [label for _, label in log_ticks(0.03, 0.07)[2]] == ["0.01", "0.02", "0.05", "0.1"]
    assert [label for _, label in log_ticks(1.0, 1.0)[2]] == ["1", "2", "5", "10"]
    assert len(log_ticks(1e-30, 1e3)[2]) <= 6  # long ranges keep a few decades


def _red_cells(svg: str) -> set[tuple[int, int]]:
    cells = set()
    for attributes in re.findall(r"<rect ([^>]*class=\"d\"[^>]*)>", svg):
        x, y, width = (int(re.search(rf'\b{name}="(\d+)"', attributes).group(1)) for name in ("x", "y", "width"))
        cells.update((y, column) for column in range(x, x + width))
    return cells


def test_the_heatmap_red_cells_are_the_dead_cells(trained_report):
    section = _section(render_html(trained_report), "run-0")
    drawn = 0
    for layer in trained_report.run(DYING_RUN).layers:
        grid = layer.liveness
        dead = {(r, c) for r, row in enumerate(grid.dead) for c, share in enumerate(row) if share > 0}
        block = _layer_block(section, layer.name)
        if not dead and not any(any(row) for row in grid.near_dead):
            assert 'class="hm"' not in block and f"all {grid.units} unit" in block  # one line, no heatmap
            continue
        heatmap = block[block.index('<svg xmlns="http://www.w3.org/2000/svg" class="hm"') :]
        assert _red_cells(heatmap[: heatmap.index("</svg>")]) == dead  # the grid is the inner <svg>
        assert f'viewBox="0 0 {len(grid.steps)} {len(grid.rows)}"' in heatmap
        assert re.search(r"<title>units? [^<]*, epochs? [\d-]+: dead 100%", heatmap)
        drawn += 1
    assert drawn >= 2  # the dead layers of the dying run


def test_partly_dead_bands_fade_and_near_dead_cells_are_orange():
    grid = LivenessMap((0, 5), ((0, 1), (2,)), ((0.0, 0.5), (0.0, 0.0)), ((0.0, 0.0), (1.0, 0.0)), ((0.5, 0.25), (0.0, 0.9)))
    page = render_html(_report(_run("r", [_layer("dense", liveness=grid)])))
    assert '<rect x="1" y="0" width="1" height="1" class="d" fill-opacity="0.7">' in page
    assert '<rect x="0" y="1" width="1" height="1" class="n">' in page
    assert "units 0, 1, step 5: dead 50%, active on 25% of samples" in page


HOSTILE = '<script>alert("x")</script>&amp;'


def test_hostile_names_are_escaped_everywhere():
    layer = _layer(HOSTILE, dead_units=(0,), liveness=_liveness(8, 4, deaths={0: 1}))
    finding = Finding("dying_relu", HOSTILE, "error", 1, units=(0,), evidence={"layers": [HOSTILE]}, fixes=(HOSTILE,), summary=HOSTILE)
    run = _run(HOSTILE, [layer], findings=(finding,), fixes=(RunFix(HOSTILE, (HOSTILE,), ("dying_relu",)),),
               warnings=(HOSTILE,), lacks=(HOSTILE,), verdict="dying_relu")  # fmt: skip
    page = render_html(Report(logdir=HOSTILE, runs=(run,)))
    assert "<script" not in page and "alert(&quot;x&quot;)" in page and "&amp;amp;" in page
    assert {tag for tag, _ in Tags(page).tags} <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p",
        "table", "tr", "th", "td", "a", "code", "span", "details", "summary", "ul", "ol", "li", "b", "div", "figure",
        "figcaption", "main", "svg", "g", "path", "rect", "line", "text", "polyline", "circle"}  # fmt: skip


def test_a_150_layer_model_stays_short_with_most_layers_folded():
    layers = [_layer(f"block_{index}/conv", liveness=_liveness(64, 120)) for index in range(BIG_MODEL_LAYERS)]
    for index in (40, 41):  # two layers lose units along the way
        layers[index] = _layer(f"block_{index}/conv", dead_units=tuple(range(0, 256, 4)),
                               liveness=_liveness(256, 120, deaths={unit: unit // 4 for unit in range(0, 256, 4)}))  # fmt: skip
    run = _run("big/train", layers, findings=(Finding("dying_relu", "block_40/conv", "warning", 0, evidence={"layers": ["block_40/conv"]}),),
               verdict="dying_relu")  # fmt: skip
    page = render_html(_report(run))
    assert len(page.encode()) < BIG_PAGE_BUDGET, len(page.encode())
    assert re.findall(r'<div class="layer" id="run-0-l(\d+)">', page) == ["40", "41"]
    assert page.count('class="hm"') == 2
    folded = page[page.index('<details class="more"><summary>148 more layers') :]
    assert folded.count("<tr>") == 1 + 148 and "block_149/conv" in folded
    healthy = render_html(_report(_run("big/train", [_layer(f"block_{index}/conv", liveness=_liveness(64, 120)) for index in range(BIG_MODEL_LAYERS)])))
    assert len(healthy.encode()) < HEALTHY_BIG_PAGE_BUDGET, len(healthy.encode())
    assert '<div class="layer"' not in healthy and "150 more layers" in healthy and healthy.count("<svg") == BIG_MODEL_LAYERS


def test_weightless_layers_plot_the_gradient_of_their_output():
    layer = _layer("relu", grad_status="no_weights", grad=(None, None), output_grad=(0.5, 0.25))
    page = render_html(_report(_run("r", [layer])))
    assert "gradient norm of the layer&#x27;s output (no weights; log)" in page and "gradient norm of the weights" not in page
    assert "<title>step 0: 0.5</title>" in page and "<title>step 1: 0.25</title>" in page and "not logged" not in page


def test_empty_reports_runs_without_data_and_other_writers_logs_render():
    assert "0 runs" in render_html(Report(logdir="empty", runs=()))
    no_data = _run("validation", [], verdict="no_data", lacks=("layer measurements",))
    estimated = _layer("dense", liveness=None, per_unit=False, dead_fraction=0.25)
    other = _run("keras/train", [estimated], source="Keras' TensorBoard callback")
    page = render_html(Report(logdir="logs", runs=(no_data, other)))
    assert "2 runs: 0 with problems, 1 healthy, 1 without data" in page
    assert "no layer measurements" in page and "lacks layer measurements" in page
    assert "no per-unit records: no heatmap" in page and 'class="hm"' not in page and "~25%" in page


# --- synthetic reports -----------------------------------------------------------------------------------

STEPS = (0, 1)


def _liveness(units: int, steps: int, deaths: dict[int, int] | None = None) -> LivenessMap:
    """A heatmap from per-unit records with smoothly drifting activity; ``deaths`` maps units to the step they die."""
    phase = np.linspace(0, np.pi, units)[None, :]
    active = 0.5 + 0.3 * np.sin(np.linspace(0, 3, steps)[:, None] + phase)
    max_abs = np.ones((steps, units))
    for unit, step in (deaths or {}).items():
        active[step:, unit] = max_abs[step:, unit] = 0.0
    return liveness_map(UnitsSeries(np.arange(steps), active, max_abs, UnitsMetadata(1e-6, "epoch")))


def _layer(name: str, *, dead_units: tuple[int, ...] = (), liveness: LivenessMap | None = None, grad_status: str = "ok",
           grad: tuple[float | None, ...] | None = None, output_grad: tuple[float | None, ...] = (),
           per_unit: bool = True, dead_fraction: float | None = None) -> LayerSummary:  # fmt: skip
    steps = liveness.steps if liveness is not None else STEPS
    grad = grad if grad is not None else tuple(0.1 / (1 + step) for step in steps)
    if dead_fraction is None:
        dead_fraction = len(dead_units) / liveness.units if liveness else 0.0
    return LayerSummary(
        name=name, activation="relu", units=liveness.units if liveness else None, per_unit=per_unit and liveness is not None,
        dead_units=dead_units, near_dead_units=(), revived_units=(), dead_fraction=dead_fraction, near_dead_fraction=0.0,
        initial_dead_fraction=0.0, first_dead_step=0 if dead_units else None, last_grad_norm=grad[-1], grad_status=grad_status,
        steps=steps, dead_fraction_by_step=(dead_fraction,) * len(steps), grad_norm_by_step=grad,
        output_grad_norm_by_step=output_grad or (None,) * len(steps), liveness=liveness,
    )  # fmt: skip


def _run(path: str, layers: list[LayerSummary], *, verdict: str = "healthy", **fields) -> RunReport:
    problems = (verdict,) if verdict not in ("healthy", "no_data") else ()
    return RunReport(path, verdict, problems, fields.pop("findings", ()), tuple(layers), "ok", None, None, False, **fields)


def _report(*runs: RunReport) -> Report:
    return Report(logdir="logs", runs=runs)

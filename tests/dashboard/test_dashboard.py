"""The ReLU Doctor tab inside a real TensorBoard: listed, enabled, and serving what build_report says.

A real ``tensorboard`` process on a free loopback port, over a logdir the callback wrote
(one dying run, one healthy), with TensorBoard's Python ingester and its Rust data server
(``--load_fast``); then headless Chromium opens the tab.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict

import pytest

from keras_relu_doctor.dashboard.data import DashboardData
from keras_relu_doctor.render.common import LAYER_COLUMNS, layer_row
from keras_relu_doctor.report import build_report, json_ready

from ..render.test_html_browser import VIEWPORT, browser  # noqa: F401  (the shared headless Chromium)
from ..render.test_html_report import DYING_RUN, HEALTHY_RUN, trained_runs

STARTUP_SECONDS = 120


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return trained_runs(tmp_path_factory)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode("utf-8"))


@pytest.fixture(scope="module", params=["false", "true"], ids=["python-ingester", "rust-data-server"])
def server(request, logdir):
    """``tensorboard --logdir LOGDIR`` on a free port, until its plugin listing shows our tab enabled."""
    process, base = _start(logdir, request.param)
    try:
        deadline, listing = time.monotonic() + STARTUP_SECONDS, {}
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"tensorboard exited: {process.stderr.read().decode()[-2000:]}")
            try:
                listing = _get(f"{base}/data/plugins_listing")[1]
                if listing.get("relu_doctor", {}).get("enabled"):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield base, listing
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_tab_is_listed_enabled_with_its_module(server):
    _, listing = server
    entry = listing["relu_doctor"]
    assert entry["enabled"], "our per-unit records did not reach TensorBoard's data provider"
    assert entry["tab_name"] == "ReLU Doctor"
    assert entry["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/relu_doctor/index.js"}


def test_routes_say_what_build_report_says(server, logdir):
    base, _ = server
    plugin = f"{base}/data/plugin/relu_doctor"
    report = build_report(logdir)
    status, runs = _get(f"{plugin}/runs")
    assert status == 200
    assert [run["run"] for run in runs] == [DYING_RUN, HEALTHY_RUN]  # problems first, though "a_healthy" sorts first
    assert [run["verdict"] for run in runs] == [report.run(DYING_RUN).verdict, "healthy"] == ["dying_relu", "healthy"]
    status, run = _get(f"{plugin}/run?" + urllib.parse.urlencode({"run": DYING_RUN}))
    expected = report.run(DYING_RUN)
    assert status == 200
    assert [finding["summary"] for finding in run["findings"]] == [finding.summary for finding in expected.findings]
    assert [fix["text"] for fix in run["fixes"]] == [fix.text for fix in expected.fixes]
    assert run["facts"]["optimizer"]["class"] == "Adam"
    root = expected.findings[0].layer
    row = next(layer for layer in run["layers"] if layer["name"] == root)
    assert row["noteworthy"] and row["cells"] == dict(zip(LAYER_COLUMNS, layer_row(expected.layer(root))))  # the text report's cells
    status, layer = _get(f"{plugin}/layer?" + urllib.parse.urlencode({"run": DYING_RUN, "layer": root}))
    assert status == 200
    assert layer["liveness"] == json_ready(asdict(expected.layer(root).liveness))
    assert layer["dead_fraction"] == json_ready(list(expected.layer(root).dead_fraction_by_step))
    assert layer["liveness"]["dead"][0][-1] == 1.0  # the first row is a dead unit at the last step


def test_bad_names_are_one_line_json_errors(server):
    base, _ = server
    plugin = f"{base}/data/plugin/relu_doctor"
    assert _get(f"{plugin}/run?run=nope") == (404, {"error": "no run 'nope'"})
    assert _get(f"{plugin}/layer?run={urllib.parse.quote(DYING_RUN)}") == (400, {"error": "missing query argument 'layer'"})


def test_the_data_follow_the_event_files(logdir, tmp_path):
    """A run is read again when its files change, and only then."""
    import shutil

    copy = tmp_path / "logs"
    shutil.copytree(logdir, copy)
    data = DashboardData([("", str(copy))])
    first = data.runs()
    assert data.runs() == first
    train = copy / DYING_RUN
    shutil.rmtree(train)
    shutil.copytree(logdir / HEALTHY_RUN, train)  # the dying run's folder now holds a healthy run
    assert {run["run"]: run["verdict"] for run in data.runs()}[DYING_RUN] == "healthy"


def test_logdir_spec_names_prefix_the_runs(logdir):
    data = DashboardData([("dies", str(logdir / DYING_RUN.split("/")[0])), ("fixed", str(logdir / HEALTHY_RUN.split("/")[0]))])
    assert [(run["run"], run["verdict"]) for run in data.runs()] == [("dies/train", "dying_relu"), ("fixed/train", "healthy")]


def test_a_reader_sees_the_dying_run_first_and_its_heatmap(server, browser, tmp_path):  # noqa: F811
    base, _ = server
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{base}/#relu_doctor")
    frame = None
    deadline = time.monotonic() + 60
    while frame is None and time.monotonic() < deadline:
        frame = next((candidate for candidate in page.frames if candidate.query_selector("nav.runs button.run")), None)
        page.wait_for_timeout(250)
    assert frame is not None, "the ReLU Doctor tab never listed a run"
    first = frame.query_selector_all("nav.runs button.run")[0]
    assert first.inner_text().split() == ["dying_relu", DYING_RUN]
    heatmap = frame.wait_for_selector("svg.heatmap", timeout=30_000)
    box = heatmap.bounding_box()
    assert box["width"] > 50 and box["height"] > 50
    assert frame.query_selector_all("svg.heatmap rect.dead"), "no dead cell drawn"
    page.screenshot(path=str(tmp_path / "dashboard.png"))
    page.close()


def test_the_plugin_never_imports_tensorflow(logdir):
    """TensorBoard loads the plugin in its own process, which may have no TensorFlow: ours never asks for it."""
    code = (
        "import sys; from keras_relu_doctor.dashboard.plugin import ReluDoctorPlugin; "
        "from keras_relu_doctor.dashboard.data import DashboardData; "
        f"DashboardData([('', {str(logdir)!r})]).runs(); "
        "assert not {'tensorflow', 'keras'} & {m.split('.')[0] for m in sys.modules}, 'imported TF'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _start(logdir, load_fast: str):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
         "--reload_interval", "1", f"--load_fast={load_fast}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def test_logs_written_before_records_said_their_data_class_still_enable_the_tab(tmp_path, monkeypatch):
    """The Rust data server drops records without a data class; the tab reads the files and stays enabled."""
    import numpy as np

    from keras_relu_doctor import tags
    from keras_relu_doctor.events import writer as writer_module

    current = writer_module.summary_metadata

    def old_metadata(plugin, content=b""):
        metadata = type(current(plugin, content))()
        metadata.CopyFrom(current(plugin, content))
        metadata.ClearField("data_class")
        return metadata

    monkeypatch.setattr(writer_module, "summary_metadata", old_metadata)
    meta = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)
    with writer_module.EventWriter(tmp_path / "old" / "train") as writer:
        for step in range(3):
            max_abs = np.array([0.0] * 6 + [1.0] * 2, dtype=np.float32)
            writer.units("dense/units", np.stack([max_abs > 0, max_abs]), step, meta)
            writer.scalar("dense/grad_norm", 0.0, step)
    process, base = _start(tmp_path, "true")
    try:
        deadline, entry = time.monotonic() + STARTUP_SECONDS, {}
        while time.monotonic() < deadline and not entry.get("enabled"):
            if process.poll() is not None:
                pytest.fail(f"tensorboard exited: {process.stderr.read().decode()[-2000:]}")
            try:
                entry = _get(f"{base}/data/plugins_listing")[1].get("relu_doctor", {})
            except OSError:
                pass
            time.sleep(0.5)
        assert entry.get("enabled"), entry
        assert _get(f"{base}/data/plugin/relu_doctor/runs")[1][0]["verdict"] == "dying_relu"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_without_a_logdir_on_disk_the_tab_says_why_it_is_empty():
    from tensorboard.plugins.base_plugin import TBContext
    from werkzeug.test import Client

    from keras_relu_doctor.dashboard.data import NO_LOGDIR
    from keras_relu_doctor.dashboard.plugin import ReluDoctorPlugin

    plugin = ReluDoctorPlugin(TBContext(logdir="", flags=None))
    assert not plugin.is_active()
    response = Client(plugin.get_plugin_apps()["/runs"]).get("/runs")
    assert response.status_code == 404 and response.get_json() == {"error": NO_LOGDIR}

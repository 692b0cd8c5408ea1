"""A tiny grid through the real ``relu-doctor replay`` command (trains real models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from keras_relu_doctor.cli.main import main
from keras_relu_doctor.replay.data import make_data
from keras_relu_doctor.replay.results import DEAD_LAYER_FRACTION
from keras_relu_doctor.replay.train import MODEL_FILE, RESULT_FILE, RUN_FILE, load_result

# The negative initializer gives both outcomes in two runs: the 1-layer net lives,
# the 3-layer net's layers 2 and 3 die at once (positive inputs x negative weights).
TINY = ["--only", "relu-negative-d?", "--seeds", "1", "--epochs", "2", "--samples", "400"]
RUNS = ("relu-negative-d1-s0", "relu-negative-d3-s0")


def replay(*args: str):
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny_replay(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("replay") / "logs"
    outcome = replay(str(logdir), *TINY, "--jobs", "1")
    assert outcome.exit_code == 0, outcome.output
    return logdir


@pytest.mark.slow
def test_every_run_is_written_with_model_settings_and_events(tiny_replay):
    for name in RUNS:
        run_dir = tiny_replay / name
        assert (run_dir / MODEL_FILE).is_file()
        assert json.loads((run_dir / RUN_FILE).read_text())["initializer"] == "negative"
        assert list((run_dir / "train").glob("events.out.tfevents.*"))
        assert load_result(run_dir).verdict in ("healthy", "dying_relu")  # the report's reading, per run too
    summary = json.loads((tiny_replay / "summary.json").read_text())
    assert [row["setting"] for row in summary["settings"]] == ["relu-negative-d1", "relu-negative-d3"]
    assert [claim["claim"] for claim in summary["claims"]] == [1, 2, 3, 4, 5, 6]
    markdown = (tiny_replay / "summary.md").read_text()
    assert "| relu-negative-d3 | 1 | 1/1 |" in markdown
    assert "The article's claims" in markdown


@pytest.mark.slow
def test_report_verdict_agrees_with_dead_units_measured_on_the_saved_model(tiny_replay):
    import keras

    from keras_relu_doctor.replay.model import dead_fractions
    from keras_relu_doctor.report import build_report

    report = build_report(tiny_replay, run_glob="*/train")
    summary = json.loads((tiny_replay / "summary.json").read_text())
    verdicts = {run["spec"]["depth"]: run["verdict"] for run in summary["runs"]}
    assert verdicts == {1: "healthy", 3: "dying_relu"}
    for name in RUNS:
        result = load_result(tiny_replay / name)
        x_probe, _ = make_data(result.spec.samples, target=result.spec.target).probe(result.spec.probe_samples)
        measured = dead_fractions(keras.saving.load_model(tiny_replay / name / MODEL_FILE), x_probe)
        assert measured == result.dead_last
        run_report = report.run(f"{name}/train")
        assert {layer: run_report.layer(layer).dead_fraction for layer in measured} == measured
        dying = max(measured.values()) > DEAD_LAYER_FRACTION
        assert (run_report.verdict == "dying_relu") == dying, (name, measured, run_report.verdict)


def test_dead_units_of_a_one_layer_model_are_counted_per_unit():
    import keras

    from keras_relu_doctor.replay.model import dead_fractions

    inputs = keras.Input(shape=(4,))
    dense = keras.layers.Dense(4, activation="relu", name="dense_1")
    model = keras.Model(inputs, keras.layers.Dense(1, name="output")(dense(inputs)))
    x_probe = make_data(100).x_train  # all inputs negative
    # Units 0 and 1 have weights > 0 (output 0 on negative inputs), units 2 and 3 < 0.
    dense.kernel.assign(np.array([[1.0, 0.5, -1.0, -0.5]] * 4, dtype="float32"))
    assert dead_fractions(model, x_probe) == {"dense_1": 0.5}


@pytest.mark.slow
def test_same_command_gives_the_same_numbers_in_worker_processes(tiny_replay, tmp_path):
    outcome = replay(str(tmp_path / "again"), *TINY, "--jobs", "2")
    assert outcome.exit_code == 0, outcome.output
    first = json.loads((tiny_replay / "summary.json").read_text())
    second = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert second == first


@pytest.mark.slow
def test_rerun_into_the_same_logdir_reuses_finished_runs(tiny_replay):
    before = {name: (tiny_replay / name / RESULT_FILE).stat().st_mtime_ns for name in RUNS}
    outcome = replay(str(tiny_replay), *TINY, "--jobs", "1")
    assert outcome.exit_code == 0, outcome.output
    assert before == {name: (tiny_replay / name / RESULT_FILE).stat().st_mtime_ns for name in RUNS}


def test_a_folder_holding_something_else_is_refused_and_kept(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    outcome = CliRunner().invoke(main, ["replay", str(tmp_path), *TINY])
    assert outcome.exit_code == 2
    assert "not empty and holds no replay" in outcome.output
    assert "Traceback" not in outcome.output
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("damage", ["no result", "result cut short", "empty run.json"])
def test_a_run_cut_short_is_trained_again(tmp_path, damage):
    logdir = tmp_path / "logs"
    assert replay(str(logdir), *TINY, "--jobs", "1").exit_code == 0
    half = logdir / RUNS[1]
    if damage == "no result":
        (half / RESULT_FILE).unlink()
    elif damage == "result cut short":
        (half / RESULT_FILE).write_text((half / RESULT_FILE).read_text()[:40])
    else:
        (half / RUN_FILE).write_text("")
        (half / RESULT_FILE).unlink()
    outcome = replay(str(logdir), *TINY, "--jobs", "1")
    assert outcome.exit_code == 0, outcome.output
    assert load_result(half).spec.name == RUNS[1]
    files = {name: sorted(path.name.split(".")[-1] for path in (logdir / name / "train").glob("events.*")) for name in RUNS}
    assert files[RUNS[0]] == files[RUNS[1]]  # trained afresh (ReluDoctor's and Keras' files), not appended to


def test_a_run_trained_with_other_settings_is_refused(tmp_path):
    (tmp_path / "replay.json").write_text("{}")
    other = tmp_path / "relu-negative-d1-s0"
    other.mkdir()
    (other / RUN_FILE).write_text(json.dumps({"activation": "relu", "epochs": 99}))
    outcome = CliRunner().invoke(main, ["replay", str(tmp_path), *TINY])
    assert outcome.exit_code == 2
    assert "other settings" in outcome.output


@pytest.mark.parametrize(
    "args",
    [["--preset", "huge"], ["--only", "nothing-like-this"], ["--seeds", "0"], ["--jobs", "0"]],
)
def test_bad_options_exit_2_with_one_line(tmp_path, args):
    outcome = CliRunner().invoke(main, ["replay", str(tmp_path / "new"), *args])
    assert outcome.exit_code == 2
    assert outcome.output.count("\n") == 1 and outcome.output.startswith("relu-doctor replay: ")
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_the_articles_head_makes_the_output_unit_a_measured_relu(tmp_path):
    """The article's architecture: every layer ReLU, the output included; 1 layer = one Dense unit."""
    import keras

    from keras_relu_doctor.replay.model import dead_fractions

    logdir = tmp_path / "logs"
    outcome = replay(str(logdir), "--only", "relu-negative-d?-article", "--seeds", "1", "--epochs", "2",
                     "--samples", "400", "--jobs", "1")  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    one, three = (load_result(logdir / f"relu-negative-d{depth}-article-s0") for depth in (1, 3))
    assert set(one.dead_last) == {"output"} and set(three.dead_last) == {"dense_1", "dense_2", "output"}
    model = keras.saving.load_model(logdir / "relu-negative-d3-article-s0" / MODEL_FILE)
    assert model.get_layer("output").activation.__name__ == "relu"
    x_probe, _ = make_data(three.spec.samples).probe(three.spec.probe_samples)
    assert dead_fractions(model, x_probe, head="article") == three.dead_last
    claims = json.loads((logdir / "summary.json").read_text())["claims"]
    assert {claim["head"] for claim in claims} == {"article"}  # no linear-head run was asked for
    assert [claim["claim"] for claim in claims] == [4]  # the one claim about the negative initializer


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_tables_fit_the_terminal_and_say_what_they_leave_out(tiny_replay, columns):
    from .widths import check_fits, tables_at

    output = tables_at(tiny_replay, columns, *TINY)
    check_fits(tiny_replay, output, columns)
    left_out = [line for line in output.splitlines() if line.startswith("Left out to fit")]
    if columns == 80:
        assert left_out and "summary.md has every column" in " ".join(output.split())
    if columns == 200:  # capped at 160, where every column fits
        assert not left_out
    markdown = (tiny_replay / "summary.md").read_text()
    assert "| setting | seeds | died | dead ep 1 | dead last | gradients |" in markdown  # the file keeps them all

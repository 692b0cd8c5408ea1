"""The terminal report reads well at any size: verdict and causes first, only the layers with something
to say, sized to the terminal, nested prefixes once, names cut in the middle and unique."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_relu_doctor import tags
from keras_relu_doctor.events.writer import EventWriter
from keras_relu_doctor.render.names import shorten_unique
from keras_relu_doctor.render.text_report import render_text
from keras_relu_doctor.report import LayerSummary, Report, RunReport, build_report

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)
SCREEN = 50  # lines of one terminal screen


def _layer(name: str, dead: tuple[int, ...] = (), status: str = "ok", **extra) -> LayerSummary:
    return LayerSummary(name, "relu", 8, True, dead, (), (), len(dead) / 8, 0.0, 0.0, 0 if dead else None, 0.25, status, **extra)


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_a_150_layer_healthy_model_reads_in_one_screen(mobilenet_logdir):
    """MobileNetV2 (about 150 measured layers): the 80-column report fits one screen, every line fits."""
    report = build_report(mobilenet_logdir)
    run = report.run("train")
    assert len(run.layers) > 100
    text = render_text(report, width=80)
    assert len(_lines(text)) <= SCREEN, text
    assert max(map(len, _lines(text))) <= 80
    assert f"{len(run.layers)} layers measured" in text
    every = render_text(report, width=80, all_layers=True)
    assert len(_lines(every)) > len(run.layers)  # --all-layers: one row per layer


def test_activation_rows_show_their_output_gradient(mobilenet_logdir):
    """ReLU and pooling layers have no weights: their row shows the norm of their output's gradient."""
    report = build_report(mobilenet_logdir)
    run = report.run("train")
    relu = next(layer for layer in run.layers if layer.grad_status == "no_weights" and layer.name.endswith("relu"))
    assert relu.last_output_grad_norm is not None and relu.last_output_grad_norm > 0
    row = next(line for line in _lines(render_text(report, width=160, all_layers=True)) if line.split()[:1] == [relu.name])
    assert row.rstrip().endswith(f"out {relu.last_output_grad_norm:.3g}")
    assert "unknown" not in render_text(report, width=160, all_layers=True)


def test_nested_prefix_once_and_names_cut_in_the_middle_stay_unique():
    prefix = "mobilenetv2_1.00_224_with_a_long_name/"
    leaves = [f"block_{block}_expand_relu_with_suffix_{part}" for block in range(12, 16) for part in ("a", "b")]
    layers = tuple(_layer(prefix + leaf, dead=(0,)) for leaf in leaves) + (_layer("dense", status="vanishing"),)
    run = RunReport("train", "dying_relu", ("dying_relu",), (), layers, "vanishing", "epoch", None, False)
    text = render_text(Report("logs", (run,)), width=80)
    lines = _lines(text)
    assert max(map(len, lines)) <= 80
    assert sum(prefix in line for line in lines) == 1  # said once, above its layers
    names = [line.split()[0] for line in lines if line.startswith("    block_")]
    assert len(names) == len(leaves) == len(set(names))
    assert all("…" in name and name.startswith("block_1") and name[-1] in "ab" for name in names)
    assert any(line.split()[:1] == ["dense"] for line in lines)  # a top-level layer after the group


def test_shortened_names_are_unique_even_when_cuts_collide():
    names = [f"layer_{i}_{'x' * 20}_{i % 3}" for i in range(10)]
    short = shorten_unique(names, 14)
    assert len(set(short.values())) == len(names)
    assert all(len(value) <= 14 or value == name for name, value in short.items())


def test_runs_with_problems_come_first_and_healthy_ones_share_a_table():
    dying = RunReport("b/train", "dying_relu", ("dying_relu",), (), (_layer("dense", dead=(0, 1, 2, 3, 4)),), "ok", "epoch", None, False)
    healthy = [RunReport(f"a{i}/train", "healthy", (), (), (_layer("dense"),), "ok", "epoch", None, False) for i in range(5)]
    text = render_text(Report("logs", (*healthy, dying)), width=80)
    lines = _lines(text)
    assert lines[0] == "relu-doctor report of logs: 6 runs (1 with problems, 5 healthy)"
    assert lines[2] == "run b/train: dying_relu"
    table = lines.index("5 healthy runs with nothing to add (no dead unit, gradients ok):")
    assert [line.split()[0] for line in lines[table + 2 : table + 7]] == [f"a{i}/train" for i in range(5)]


def test_a_validation_folder_alone_is_named_and_explained(tmp_path):
    with EventWriter(tmp_path / "run1" / "validation") as writer:
        writer.scalar(tags.KERAS_EPOCH_LOSS, 1.0, step=0)
    text = render_text(build_report(tmp_path / "run1" / "validation"), width=80)
    assert "run validation: no_data" in text and "run .:" not in text
    assert "only scalars" in " ".join(text.split())


@pytest.fixture(scope="module")
def long_logdir(tmp_path_factory):
    """A run with long layer names and a dead one, written as the callback writes them."""
    logdir = tmp_path_factory.mktemp("widths")
    with EventWriter(logdir / "experiment" / "train") as writer:
        for step in range(3):
            for block in range(6):
                max_abs = np.array([0.0] * 6 + [1.0] * 2 if step and block == 3 else [1.0] * 8, dtype=np.float32)
                name = f"backbone/stage_{block}/conv_block_{block}_depthwise_relu_long"
                writer.units(f"{name}/units", np.stack([max_abs > 0, max_abs]), step, METADATA)
                writer.scalar(f"{name}/grad_norm", 0.5, step)
            writer.scalar(tags.KERAS_EPOCH_LOSS, 1.0 / (step + 1), step)
    return logdir


@pytest.mark.parametrize("columns", [80, 120])
def test_the_command_fits_the_terminal_width_it_is_given(long_logdir, columns):
    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "report", str(long_logdir)], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert max(map(len, _lines(done.stdout))) <= columns
    assert "dying_relu" in done.stdout
    every = subprocess.run(
        [sys.executable, "-m", "cli.main", "report", str(long_logdir), "--all-layers"], capture_output=True, text=True, env=env, check=False
    )
    assert every.stdout.count("conv_block_") - done.stdout.count("conv_block_") == 5  # the five live layers


def test_piped_output_has_a_sane_width(long_logdir):
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "report", str(long_logdir)], capture_output=True, text=True, env=env, check=False)
    assert 60 < max(map(len, _lines(done.stdout))) <= 100


def test_many_partial_deaths_read_as_one_line_and_a_capped_table():
    """A network where a third of every block died: one info line for them all, a table of at most TABLE_ROWS rows."""
    from keras_relu_doctor.diagnose.findings import Finding
    from keras_relu_doctor.render.text_report import TABLE_ROWS

    layers = tuple(_layer(f"block_{i}_relu", dead=tuple(range(1 + i % 3))) for i in range(40)) + (_layer("out_relu", dead=tuple(range(8))),)
    info = tuple(
        Finding("dying_relu", f"block_{i}_relu", "info", 1, evidence={"dead_fraction": (1 + i % 3) / 8}, summary="capacity lost")
        for i in range(40)
    )
    root = Finding("dying_relu", "out_relu", "warning", 1, units=tuple(range(8)), summary="8 of 8 units dead")
    run = RunReport("train", "dying_relu", ("dying_relu",), (root, *info), layers, "ok", "epoch", None, False)
    lines = _lines(render_text(Report("logs", (run,)), width=100))
    assert sum("info dying_relu in 40 layers: 12% to 38% of their units dead" in line for line in lines) == 1
    rows = [line for line in lines if line.startswith("  block_") or line.startswith("  out_relu")]
    assert len(rows) == TABLE_ROWS and rows[-1].startswith("  out_relu")  # the problem layer always stays
    assert "  and 21 more layers with dead or near-dead units (up to 25% dead)" in lines
    assert len(lines) < 45

"""The deep-stack replay: its grid, its findings' logic, and a tiny grid through the real command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from keras_relu_doctor.cli.main import main
from keras_relu_doctor.replay.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from keras_relu_doctor.replay.deep_stack.claims import evaluate_stack_claims
from keras_relu_doctor.replay.deep_stack.data import make_images
from keras_relu_doctor.replay.deep_stack.grid import CLIP_NORM, INIT_LARGE, StackSpec, build_stack_grid
from keras_relu_doctor.replay.deep_stack.model import conv_layer_names
from keras_relu_doctor.replay.deep_stack.results import StackResult
from keras_relu_doctor.replay.train import MODEL_FILE, RUN_FILE, load_result

TINY = ["--experiment", "deep-stack", "--only", "relu-b2*", "--seeds", "1", "--epochs", "2", "--samples", "200"]
RUNS = ("relu-b2-s0", "relu-b2-bn-s0", "relu-b2-res-s0")


def replay(*args: str):
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


def test_quick_grid_covers_every_form_the_explosion_and_clipping():
    grid = build_stack_grid("quick")
    settings = list(dict.fromkeys(spec.setting for spec in grid))
    assert len(grid) == 2 * len(settings)  # two seeds each
    for activation in ("sigmoid", "relu"):
        for form in ("", "-bn", "-res"):
            assert all(f"{activation}-b{blocks}{form}" in settings for blocks in (2, 8, 16))
    assert settings[-3:] == ["relu-b8-large_init", "relu-b8-large_init-clip", "sigmoid-b16-clip"]
    clipped = [spec for spec in grid if spec.clip]
    assert {spec.clip for spec in clipped} == {CLIP_NORM}
    assert [spec.setting for spec in build_stack_grid("quick", only="res", seeds=1)] == [
        "sigmoid-b2-res", "sigmoid-b8-res", "sigmoid-b16-res", "relu-b2-res", "relu-b8-res", "relu-b16-res"
    ]  # fmt: skip


def test_images_are_fixed_by_their_seed_and_learnable_shapes():
    first, second = make_images(300, data_seed=0), make_images(300, data_seed=0)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert first.x_train.shape == (210, 8, 8, 1) and set(np.unique(first.y_train)) == set(range(10))
    assert not np.array_equal(make_images(300, data_seed=1).x_train, first.x_train)


def _run(activation, blocks, accuracy, *, form="plain", init="default", clip=0.0, loss=0.5, problems=(), norms=()):
    spec = StackSpec(activation, blocks, form, init, clip)
    return StackResult(spec, (loss,), (loss,), (accuracy,), 0.1, verdict="healthy" if not problems else problems[0],
                       problems=tuple(problems), grad_norms=tuple(norms))  # fmt: skip


def test_findings_follow_the_runs():
    runs = [
        _run("sigmoid", 2, 0.9),
        _run("sigmoid", 8, 0.1, loss=2.3, problems=("vanishing_gradients",), norms=(1e-6, 1e-3, 1e-1)),
        _run("relu", 8, 0.9, norms=(0.1, 0.2, 0.1)),
        _run("relu", 16, 0.1, loss=2.3, norms=(1e-2, 1e-1, 1e-1)),
        _run("relu", 16, 0.8, form="bn"),
        _run("relu", 16, 0.9, form="res", norms=(0.1, 1e-5, 0.2, 0.3)),
        _run("relu", 8, 0.1, init=INIT_LARGE, loss=float("nan"), problems=("exploding_gradients",)),
        _run("relu", 8, 0.6, init=INIT_LARGE, clip=CLIP_NORM),
        _run("sigmoid", 16, 0.1, clip=CLIP_NORM, loss=2.3),
    ]
    claims = {claim.claim: claim for claim in evaluate_stack_claims(runs)}
    assert claims[1].verdict == REPRODUCED, claims[1].evidence
    # Two plain stacks learnt nothing: the stem is 100x below the last conv in one; the report saw it in one.
    assert claims[2].verdict == PARTLY and "1/2 runs" in claims[2].evidence
    assert claims[3].verdict == REPRODUCED and claims[4].verdict == REPRODUCED
    assert claims[5].verdict == REPRODUCED and claims[6].verdict == REPRODUCED
    # A BatchNorm stack that learns nothing where the plain one failed contradicts finding 5.
    worse = [run for run in runs if run.spec.form != "bn"] + [_run("relu", 16, 0.1, form="bn", loss=2.3)]
    assert {c.claim: c for c in evaluate_stack_claims(worse)}[5].verdict == NOT_REPRODUCED


def test_a_diverged_run_neither_trains_nor_counts_as_finite():
    run = _run("relu", 8, 0.9, init=INIT_LARGE, loss=math.inf)
    assert run.diverged and not run.trains and run.learnt_nothing


@pytest.fixture(scope="module")
def tiny_stacks(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("deep") / "logs"
    outcome = replay(str(logdir), *TINY, "--jobs", "2")
    assert outcome.exit_code == 0, outcome.output
    assert "The article's findings on deep stacks" in outcome.output
    return logdir


@pytest.mark.slow
def test_tiny_deep_stack_replay_tables_match_the_saved_models(tiny_stacks):
    import keras

    data = make_images(200)
    summary = json.loads((tiny_stacks / "summary.json").read_text())
    assert summary["options"]["experiment"] == "deep-stack" and "target" not in summary["options"]
    assert [row["setting"] for row in summary["settings"]] == ["relu-b2", "relu-b2-bn", "relu-b2-res"]
    assert [claim["claim"] for claim in summary["claims"]] == [1, 2, 3, 4, 5, 6]
    for name, row in zip(RUNS, summary["settings"]):
        run_dir = tiny_stacks / name
        assert json.loads((run_dir / RUN_FILE).read_text())["blocks"] == 2
        result = load_result(run_dir, StackResult)
        assert result.verdict not in ("", "no_data")
        assert len(result.grad_norms) == len(conv_layer_names(2)) and all(n is not None for n in result.grad_norms)
        model = keras.models.load_model(run_dir / MODEL_FILE)
        _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
        assert accuracy == pytest.approx(result.accuracy, abs=1e-6)
        assert row["accuracy"] == pytest.approx(round(accuracy, 3), abs=1e-3)
        if name == "relu-b2-res-s0":
            assert any(layer.name == "block1_add" for layer in model.layers)
        if name == "relu-b2-bn-s0":
            assert model.get_layer("block2_bn2").momentum == pytest.approx(0.9)
    markdown = (tiny_stacks / "summary.md").read_text()
    assert "| relu-b2-res | 1 |" in markdown


@pytest.mark.slow
def test_rerun_reuses_runs_and_another_experiment_is_refused(tiny_stacks):
    before = (tiny_stacks / "summary.json").read_text()
    again = replay(str(tiny_stacks), *TINY, "--jobs", "1")
    assert again.exit_code == 0 and (tiny_stacks / "summary.json").read_text() == before
    other = replay(str(tiny_stacks), "--only", "selu", "--seeds", "1", "--epochs", "1", "--samples", "100")
    assert other.exit_code == 2
    assert "holds the 'deep-stack' replay, not 'dying'" in other.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment", "deep-stack", "--only", "nothing"], "matches no setting"),
        (["--experiment", "deep-stack", "--target", "random-labels"], "--target applies to --experiment dying only"),
        (["--experiment", "deep-stack", "--samples", "20"], "--samples must be at least 40"),
    ],
)
def test_bad_deep_stack_options_exit_2_with_one_line(tmp_path, args, message):
    outcome = replay(str(tmp_path / "logs"), *args)
    assert outcome.exit_code == 2
    assert message in outcome.output and outcome.output.count("\n") == 1


@pytest.mark.parametrize("columns", [80, 120])
def test_tables_fit_the_terminal(tiny_stacks, columns):
    from .widths import check_fits, tables_at

    check_fits(tiny_stacks, tables_at(tiny_stacks, columns, *TINY), columns)

"""The loss-spikes replay: its grid, its findings' logic, and a tiny grid through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from keras_relu_doctor.cli.main import main
from keras_relu_doctor.replay.claims import NOT_REPRODUCED, REPRODUCED
from keras_relu_doctor.replay.deep_stack.data import make_images
from keras_relu_doctor.replay.spikes.claims import evaluate_spike_claims
from keras_relu_doctor.replay.spikes.grid import LOW_LR, SpikeSpec, build_spike_grid
from keras_relu_doctor.replay.spikes.results import SpikeResult
from keras_relu_doctor.replay.train import MODEL_FILE, load_result

TINY = ["--experiment", "spikes", "--only", "max*", "--seeds", "1", "--epochs", "2", "--samples", "400"]


def replay(*args: str):
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


def test_grid_changes_one_thing_of_the_max_pooling_model_at_a_time():
    grid = build_spike_grid("quick", seeds=1)
    base = grid[0]
    assert base.setting == "max" and base.log_every == 5
    changed = {spec.setting: {k for k in vars(spec) if getattr(spec, k) != getattr(base, k)} for spec in grid[1:]}
    assert changed == {
        "avg": {"pool"},
        "max-low_lr": {"learning_rate"},
        "avg-low_lr": {"pool", "learning_rate"},
        "max-warmup": {"warmup_steps"},
        "max-prelu": {"activation"},
        "max-l2norm": {"l2norm"},
    }


def _run(spec, *, spikes=(), at_spikes=0, dead=0, start=0, near=0, first=None, zeros=None):
    return SpikeResult(spec, (0.5,), (0.9,), spike_steps=spikes, deaths_at_spikes=at_spikes, dead_units=dead,
                       dead_at_start=start, near_dead_units=near, first_death=first, pool_zero_share=zeros)  # fmt: skip


def test_findings_follow_the_runs():
    runs = [
        _run(SpikeSpec(), spikes=(10, 30), at_spikes=4, dead=20, start=2, first=10, zeros=0.43),
        _run(SpikeSpec(pool="avg"), spikes=(20,), at_spikes=1, dead=5, first=20, zeros=0.12),
        _run(SpikeSpec(learning_rate=LOW_LR), dead=6, first=200, zeros=0.2),
        _run(SpikeSpec(pool="avg", learning_rate=LOW_LR), zeros=0.05),
        _run(SpikeSpec(activation="prelu"), spikes=(10,), near=7),
        _run(SpikeSpec(l2norm=True)),
    ]
    claims = {claim.claim: claim for claim in evaluate_spike_claims(runs)}
    assert [claims[n].verdict for n in range(1, 6)] == [REPRODUCED] * 5, [c.evidence for c in claims.values()]
    assert "max 43%, avg 12%" in claims[1].evidence
    # Deaths away from the spikes, and a normalised model that still loses units, contradict 2 and 5.
    worse = [_run(SpikeSpec(), spikes=(10,), dead=9, first=50), _run(SpikeSpec(l2norm=True), spikes=(5,), dead=3)]
    claims = {claim.claim: claim for claim in evaluate_spike_claims(worse)}
    assert claims[2].verdict == NOT_REPRODUCED and claims[5].verdict == NOT_REPRODUCED


@pytest.fixture(scope="module")
def tiny_spikes(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("spikes") / "logs"
    outcome = replay(str(logdir), *TINY, "--jobs", "2")
    assert outcome.exit_code == 0, outcome.output
    assert "The article's findings on loss spikes and pooling" in outcome.output
    return logdir


@pytest.mark.slow
def test_tiny_spikes_replay_matches_the_saved_models_and_the_events(tiny_spikes):
    import keras

    from keras_relu_doctor.events import read_logdir
    from keras_relu_doctor.report import build_report
    from keras_relu_doctor.tags import PROBE_LOSS, ZERO_FRACTION, tag

    data = make_images(400)
    summary = json.loads((tiny_spikes / "summary.json").read_text())
    assert [row["setting"] for row in summary["settings"]] == ["max", "max-low_lr", "max-warmup", "max-prelu",
                                                               "max-l2norm"]  # fmt: skip
    assert [claim["claim"] for claim in summary["claims"]] == [1, 2, 3, 4, 5]
    report = build_report(tiny_spikes, run_glob="*/train")
    logdir = read_logdir(tiny_spikes, "*/train")
    for row in summary["settings"]:
        name = f"{row['setting']}-s0"
        result = load_result(tiny_spikes / name, SpikeResult)
        model = keras.models.load_model(tiny_spikes / name / MODEL_FILE)
        _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
        assert accuracy == pytest.approx(result.accuracy, abs=1e-6)
        run = logdir.run(f"{name}/train")
        steps = run.scalars[PROBE_LOSS].steps
        assert list(steps[:2]) == [0, 5]  # logged every 5 batches
        zeros = run.scalars[tag("pool", ZERO_FRACTION)].values
        assert result.pool_zero_share == pytest.approx(zeros[-max(len(zeros) // 4, 1) :].mean(), abs=1e-4)
        spikes = [f.evidence["spike_steps"] for f in report.run(f"{name}/train").findings if f.kind == "loss_spikes"]
        assert list(result.spike_steps) == (spikes[0] if spikes else [])
        assert result.units == 32 + 32 + 64
        classes = {type(layer).__name__ for layer in model.layers}
        assert ("PReLU" in classes) == (row["setting"] == "max-prelu")
        assert ("UnitNormalization" in classes) == (row["setting"] == "max-l2norm")


@pytest.mark.parametrize("columns", [80, 120])
def test_tables_fit_the_terminal(tiny_spikes, columns):
    from .widths import check_fits, tables_at

    check_fits(tiny_spikes, tables_at(tiny_spikes, columns, *TINY), columns)

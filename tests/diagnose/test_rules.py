"""The rules on hand-built series and logdirs: spikes, histogram-only runs, thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from keras_relu_doctor import tags
from keras_relu_doctor.diagnose import Thresholds, diagnose
from keras_relu_doctor.diagnose.findings import INFO, WARNING
from keras_relu_doctor.diagnose.fixes import FIXES
from keras_relu_doctor.diagnose.layers import LayerSeries
from keras_relu_doctor.diagnose.loss import loss_curve
from keras_relu_doctor.diagnose.gradients import vanishing_gradients
from keras_relu_doctor.errors import BadOption
from keras_relu_doctor.events import ScalarSeries, read_logdir
from keras_relu_doctor.events.writer import EventWriter
from keras_relu_doctor.report import build_report

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)


def _units_record(max_abs: list[float]) -> np.ndarray:
    max_abs = np.asarray(max_abs, dtype=np.float32)
    return np.stack([(max_abs > 1e-6).astype(np.float32), max_abs])


def test_deaths_at_a_loss_spike_put_the_learning_rate_first(tmp_path):
    losses = [1.0, 0.8, 2.4, 0.7, 0.6]  # Keras' epoch_loss of epoch index 0..4: the third epoch spikes
    alive = [1.0] * 6
    with EventWriter(tmp_path / "train") as writer:
        for step in range(len(losses) + 1):  # the baseline, then after each epoch
            max_abs = alive if step < 3 else [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
            writer.units("dense/units", _units_record(max_abs), step=step, metadata=METADATA)
            writer.scalar("dense/grad_norm", 0.5, step=step)
            if step < len(losses):
                writer.scalar(tags.KERAS_EPOCH_LOSS, losses[step], step=step)
    run = build_report(tmp_path).run("train")
    dying = next(f for f in run.findings if f.kind == "dying_relu")
    # Keras logs epoch index 2 at step 2; our records after it are at step 3 (epochs done).
    assert dying.evidence["deaths_at_loss_spikes"] == {"3": 4}
    assert dying.fixes[0] == FIXES["lower_lr"]
    spikes = next(f for f in run.findings if f.kind == "loss_spikes")
    assert spikes.severity == WARNING and spikes.evidence["spike_steps"] == [3]
    assert run.problems == ("dying_relu", "loss_spikes")


def test_logs_of_schema_1_keep_keras_epoch_steps(tmp_path):
    """Before the baseline step, epoch index e was logged at step e, as Keras does: no shift."""
    import dataclasses

    old = dataclasses.replace(METADATA, schema=1)
    with EventWriter(tmp_path / "train") as writer:
        for step, loss in enumerate([1.0, 0.8, 2.4, 0.7, 0.6]):
            max_abs = [1.0] * 6 if step < 2 else [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
            writer.units("dense/units", _units_record(max_abs), step=step, metadata=old)
            writer.scalar(tags.KERAS_EPOCH_LOSS, loss, step=step)
    dying = next(f for f in build_report(tmp_path).run("train").findings if f.kind == "dying_relu")
    assert dying.evidence["deaths_at_loss_spikes"] == {"2": 4}


def test_near_dead_units_are_reported_apart(tmp_path):
    import dataclasses

    prelu = dataclasses.replace(METADATA, activation="prelu", layer_class="PReLU")
    with EventWriter(tmp_path) as writer:
        for step in range(3):
            writer.units("prelu/units", _units_record([1e-7, 1e-7, 0.0, 1.0]), step=step, metadata=prelu)
    layer = build_report(tmp_path).run(".").layer("prelu")
    assert layer.dead_units == (2,) and layer.near_dead_units == (0, 1)
    finding = build_report(tmp_path).run(".").findings[0]
    assert finding.kind == "dying_relu" and finding.evidence["near_dead_units"] == [0, 1]


def test_histogram_only_run_estimates_dead_share_without_unit_detail(tmp_path):
    rng = np.random.default_rng(0)
    with EventWriter(tmp_path / "other_tool") as writer:
        for step in range(3):
            values = np.maximum(rng.normal(size=(200, 10)), 0.0)
            values[:, :8] = 0.0  # 8 of 10 units dead
            writer.histogram("block1/activations", values, step=step)
            writer.histogram("block2/activations", np.maximum(rng.normal(size=2000), 0), step=step)
    run = build_report(tmp_path).run("other_tool")
    assert run.verdict == "dying_relu"
    finding = next(f for f in run.findings if f.kind == "dying_relu")
    assert finding.layer == "block1" and finding.units == ()
    assert "unavailable" in finding.evidence["per_unit_detail"]
    assert finding.evidence["zero_fraction"] >= 0.9
    assert not run.layer("block1").per_unit and run.layer("block1").dead_units == ()
    assert run.layer("block2").dead_fraction < 0.2


def test_zero_gradients_behind_a_dead_layer_are_not_called_vanishing(tmp_path):
    with EventWriter(tmp_path) as writer:
        for step in range(3):
            writer.units("dense/units", _units_record([0.0] * 4), step=step, metadata=METADATA)
            writer.scalar("dense/grad_norm", 0.0, step=step)
            writer.scalar("dense_1/grad_norm", 0.3, step=step)
    run = build_report(tmp_path).run(".")
    assert run.problems == ("dying_relu",)
    assert run.layer("dense").grad_status == "zero"


def test_vanishing_rule_reads_orders_of_magnitude_towards_the_input():
    def layer(name, norm):
        return LayerSeries(name, grad_norm=ScalarSeries(np.arange(2), np.array([norm, norm])))

    healthy = (layer("a", 0.05), layer("b", 0.2), layer("c", 1.0))
    assert vanishing_gradients(healthy) is None
    finding = vanishing_gradients((layer("a", 1e-5), layer("b", 1e-2), layer("c", 1.0)))
    assert finding.layer == "a" and finding.evidence["layers"] == ["a"]
    assert vanishing_gradients((layer("a", 1e-5), layer("c", 1.0)), span_orders=6) is None


def test_flat_and_oscillating_losses_are_information_only():
    flat = loss_curve(ScalarSeries(np.arange(5), np.full(5, 0.6931)))
    assert [f.kind for f in flat] == ["loss_plateau"] and flat[0].severity == INFO
    zigzag = np.array([2.0, 1.5, 1.2, 1.0, 1.3, 0.9, 1.35, 0.85, 1.3, 0.9])
    kinds = [f.kind for f in loss_curve(ScalarSeries(np.arange(10), zigzag))]
    assert "loss_oscillation" in kinds


def test_validation_run_without_layers_has_no_data(tmp_path):
    with EventWriter(tmp_path / "validation") as writer:
        writer.scalar(tags.KERAS_EPOCH_LOSS, 1.0, step=0)
    assert diagnose(read_logdir(tmp_path).runs[0]).verdict == "no_data"


@pytest.mark.parametrize(
    "options, message",
    [({"dead_threshold": 0}, "positive"), ({"dead_threshold": 1.5}, "(0, 1]"), ({"grad_flor": 1e-3}, "unknown")],
)
def test_bad_thresholds_are_bad_options(options, message):
    with pytest.raises(BadOption, match=message.replace("(", r"\(").replace("]", r"\]")):
        Thresholds.from_options(**options)

"""End to end: logdirs written by the ReluDoctor callback get the right verdict."""

from __future__ import annotations

import numpy as np

from keras_relu_doctor.report import build_report


def test_dead_model_is_dying_relu_with_units_and_death_steps(callback_logdirs, dead_model_plan):
    dead_from_start, killed, kill_epoch = dead_model_plan
    run = build_report(callback_logdirs["dead"]).run("train")
    assert run.verdict == "dying_relu"
    assert run.problems[0] == "dying_relu"
    layer = run.layer("dense")
    assert layer.dead_units == tuple(sorted((*dead_from_start, killed)))
    assert layer.dead_fraction == 5 / 8
    assert layer.initial_dead_fraction == 4 / 8
    assert layer.first_dead_step == 0
    finding = next(f for f in run.findings if f.kind == "dying_relu")
    assert finding.layer == "dense" and finding.units == layer.dead_units
    # Killed at the end of epoch index kill_epoch: logged after kill_epoch + 1 epochs.
    assert finding.onset_step == kill_epoch + 1  # the step the share passed 50%
    assert finding.evidence["death_steps"] == {
        **{str(unit): 0 for unit in dead_from_start},
        str(killed): kill_epoch + 1,
    }
    assert layer.dead_fraction_by_step == (0.5, 0.5, 0.5, 0.625, 0.625)


def test_healthy_relu_model_with_sparse_outputs_is_healthy(callback_logdirs):
    from keras_relu_doctor.events import read_logdir

    run = build_report(callback_logdirs["healthy"]).run("train")
    assert run.verdict == "healthy" and run.problems == ()
    # Sparsity is not death: about half of the ReLU outputs are zero.
    zero_fraction = read_logdir(callback_logdirs["healthy"]).run("train").scalars["dense/zero_fraction"]
    assert 0.3 < zero_fraction.last < 0.7
    assert all(layer.grad_status == "ok" for layer in run.layers)


def test_deep_sigmoid_stack_has_vanishing_gradients(callback_logdirs):
    run = build_report(callback_logdirs["sigmoid"]).run("train")
    assert run.verdict == "vanishing_gradients"
    finding = next(f for f in run.findings if f.kind == "vanishing_gradients")
    assert finding.layer == "dense"  # the input-most layer
    assert finding.evidence["orders_below_output_layer"] >= 3
    assert run.layer("dense").grad_status == "vanishing"
    assert finding.fixes[0].startswith("In deep stacks use ReLU-family")


def test_large_init_deep_relu_net_explodes(callback_logdirs):
    run = build_report(callback_logdirs["exploding"]).run("train")
    assert run.verdict == "exploding_gradients"
    assert run.gradient_status == "nan"
    finding = next(f for f in run.findings if f.kind == "exploding_gradients")
    assert finding.severity == "error" and finding.onset_step == 0
    # NaN outputs are recorded as zero: they must not pass for dead units.
    assert "dying_relu" not in run.problems


def test_tanh_net_with_huge_weights_saturates(callback_logdirs):
    run = build_report(callback_logdirs["tanh"]).run("train")
    assert run.verdict == "saturation"
    saturated = [f for f in run.findings if f.kind == "saturation"]
    assert {f.layer for f in saturated} == {"dense", "dense_1"}
    assert all(f.evidence["saturated_share"] > 0.5 for f in saturated)


def test_keras_loss_is_read_beside_our_records(callback_logdirs):
    run = build_report(callback_logdirs["healthy"]).run("train")
    assert run.loss_tag == "epoch_loss" and run.step_unit == "epoch"
    steps = np.array(run.layer("dense").steps)
    np.testing.assert_array_equal(steps, np.arange(5))  # the baseline, then 4 epochs

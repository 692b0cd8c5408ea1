"""The claims table, fed synthetic run results (no training)."""

from __future__ import annotations

from keras_relu_doctor.replay.claims import (
    NOT_REPRODUCED,
    NOT_TESTED,
    PARTLY,
    REPRODUCED,
    REPRODUCED_WHERE_TESTED,
    evaluate_claims,
)
from keras_relu_doctor.replay.grid import build_grid
from keras_relu_doctor.replay.results import RunResult
from keras_relu_doctor.replay.summary import build_summary

BASELINE = 0.6


def result(spec, *, dead_first=0.0, dead_last=0.0, val_loss=0.05, gradients="ok"):
    layers = [f"dense_{index}" for index in range(1, spec.depth + 1)]
    return RunResult(
        spec=spec,
        dead_first={name: dead_first for name in layers},
        dead_last={name: dead_last for name in layers},
        train_loss=(BASELINE, val_loss),
        val_loss=(BASELINE, val_loss),
        baseline_val_loss=BASELINE,
        gradient_status=gradients,
    )


def claims_by_number(results, head="linear"):
    return {claim.claim: claim for claim in evaluate_claims(results) if claim.head == head}


def test_claim_1_not_reproduced_when_the_dying_model_lives_and_learns():
    runs = [result(spec) for spec in build_grid("quick", only="relu-random_uniform-d*", seeds=3)]
    claim = claims_by_number(runs)[1]
    assert claim.verdict == NOT_REPRODUCED
    assert [part.holds for part in claim.parts] == [0, 0, 0]
    assert [part.tested for part in claim.parts] == [6, 6, 6]
    assert claim.settings == ("relu-random_uniform-d1", "relu-random_uniform-d3")


def test_claim_1_reproduced_when_all_seeds_die_and_stay_flat():
    runs = [
        result(spec, dead_first=1.0, dead_last=1.0, val_loss=BASELINE, gradients="zero")
        for spec in build_grid("quick", only="relu-random_uniform-d*", seeds=3)
    ]
    assert claims_by_number(runs)[1].verdict == REPRODUCED


def test_a_claim_is_partly_reproduced_when_seeds_disagree():
    specs = build_grid("quick", only="relu-negative-d1", seeds=2)
    runs = [
        result(specs[0], dead_first=0.0, dead_last=1.0, val_loss=BASELINE),
        result(specs[1], dead_first=0.0, dead_last=0.0),
    ]
    claim = claims_by_number(runs)[4]
    assert [part.verdict for part in claim.parts] == [REPRODUCED, PARTLY]
    assert claim.verdict == PARTLY
    assert "dead at the last epoch (key): 1/2 runs" in claim.evidence


def test_a_claim_whose_key_part_fails_is_not_reproduced_whatever_the_rest():
    # He/LeCun/random_uniform: alive after epoch 1 (as the article says), but never die later.
    runs = [result(spec) for spec in build_grid("quick", only="relu-he_*", seeds=2)]
    claim = claims_by_number(runs)[3]
    assert [part.verdict for part in claim.parts] == [REPRODUCED, NOT_REPRODUCED]
    assert claim.verdict == NOT_REPRODUCED


def test_claim_5_contradicted_by_dead_units_and_no_learning():
    runs = [
        result(spec, dead_last=1.0, val_loss=BASELINE, gradients="ok")
        for spec in build_grid("quick", only="tanh-he_normal-d*", seeds=2)
    ]
    claim = claims_by_number(runs)[5]
    assert claim.verdict == NOT_REPRODUCED
    assert [part.evidence for part in claim.parts] == [
        "no dead unit: 0/4 runs",
        "gradients vanish (report): 0/4 runs",
        "learns (loss below 90% of baseline): 0/4 runs",
    ]


def test_parts_without_a_report_are_not_counted():
    runs = [result(spec, gradients="") for spec in build_grid("quick", only="sigmoid-lecun_uniform-d1", seeds=2)]
    claim = claims_by_number(runs)[5]
    assert claim.parts[1].evidence == "gradients vanish (report): n/a"
    # No dead unit and learns in every run; the untested part keeps it from a plain "reproduced".
    assert claim.verdict == REPRODUCED_WHERE_TESTED


def test_claim_6_best_of_all_compares_with_the_other_settings_of_its_depth():
    selu = build_grid("quick", only="selu-lecun_normal-d1", seeds=2)
    relu = build_grid("quick", only="relu-he_normal-d1", seeds=2)
    runs = [result(spec, val_loss=0.2) for spec in selu] + [result(spec, val_loss=0.1) for spec in relu]
    claim = claims_by_number(runs)[6]
    assert [part.verdict for part in claim.parts] == [REPRODUCED, REPRODUCED, NOT_REPRODUCED]
    assert claim.verdict == PARTLY


def test_claims_without_runs_are_not_tested_and_the_summary_keeps_them():
    runs = [result(spec) for spec in build_grid("quick", only="selu", seeds=1)]
    claims = claims_by_number(runs)
    assert {claims[number].verdict for number in (1, 2, 3, 4, 5)} == {NOT_TESTED}
    summary = build_summary(runs, {"preset": "quick"}).to_dict()
    assert [claim["claim"] for claim in summary["claims"]] == [1, 2, 3, 4, 5, 6]
    assert summary["schema"] == 1
    assert all("seconds" not in run for run in summary["runs"])

"""The article's claims (Jithin Jayan, "Is ReLU Dead?", 2019: observations 1-6), judged on the replay's runs.

A pure function, :func:`evaluate_claims`, from run results to a claims table.
Each claim is split into *parts* that a single run can show or not (e.g. "units
dead at the last epoch", "loss flat"). A part is judged by the share of the
claim's runs that show it:

- ``reproduced`` when at least ``REPRODUCED_SHARE`` of the runs show it,
- ``not reproduced`` when at most ``NOT_REPRODUCED_SHARE`` do,
- ``partly`` in between (seeds or settings disagree).

A claim is ``reproduced`` when all its parts are; ``not reproduced`` when none
is, or when its *key* part is not (the part the claim is about, e.g. "dead at
the last epoch" for "initializers do not help": being alive after epoch 1 does
not rescue a claim about dying later); ``partly`` otherwise. Parts that no run could answer (left out by
``--only``, or no report to read) are shown as ``n/a`` and do not count; a claim
with no answered part is ``not tested``, and one whose answered parts all hold
while others went unanswered is ``reproduced where tested``.

>>> from keras_relu_doctor.replay.grid import RunSpec
>>> alive = RunResult(RunSpec("relu", "random_uniform", 1, 0), {"dense_1": 0.0}, {"dense_1": 0.0},
...                   (0.5, 0.1), (0.5, 0.05), baseline_val_loss=0.6)
>>> claim = evaluate_claims([alive])[0]
>>> claim.claim, claim.verdict
(1, 'not reproduced')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from keras_relu_doctor.replay.grid import (
    BASE_INITIALIZER,
    HEAD_LINEAR,
    HEADS,
    VARIANT_BASE,
    VARIANT_DROPOUT,
    VARIANT_MORE_DATA,
    VARIANT_MORE_EPOCHS,
)
from keras_relu_doctor.replay.results import DEAD_LAYER_FRACTION, RunResult

# A part holds when at least 3 runs in 4 show it: one unlucky seed in four does not
# overturn it, two in four make it "partly".
REPRODUCED_SHARE = 0.75
# A part fails when at most 1 run in 4 shows it.
NOT_REPRODUCED_SHARE = 0.25
# "Loss is flat" / "stopped learning": the final validation loss is still at least
# 90% of the baseline (always predicting the training mean, what a fully dead
# model scores). Below it the model learnt something.
LEARNT_NOTHING_RATIO = 0.9

REPRODUCED = "reproduced"
PARTLY = "partly"
NOT_REPRODUCED = "not reproduced"
NOT_TESTED = "not tested"
REPRODUCED_WHERE_TESTED = "reproduced where tested"  # every answered part holds, some could not be answered

# The report's run-level gradient statuses (``RunReport.gradient_status``).
GRADIENTS_VANISHING = "vanishing"
GRADIENTS_ZERO = "zero"
GRADIENTS_UNKNOWN = ("", "n/a", "unknown")

# A run's answer to one part: True/False, or None when it cannot tell (no report).
Check = Callable[[RunResult], "bool | None"]


@dataclass(frozen=True)
class PartResult:
    """One checkable part of a claim: how many of its runs show it, and the verdict."""

    description: str
    holds: int
    tested: int
    verdict: str
    key: bool = False

    @property
    def evidence(self) -> str:
        """e.g. ``dead at the last epoch: 3/4 runs`` (a key part is marked ``(key)``)."""
        label = f"{self.description} (key)" if self.key else self.description
        return f"{label}: {self.holds}/{self.tested} runs" if self.tested else f"{label}: n/a"


@dataclass(frozen=True)
class ClaimResult:
    """One row of the claims table."""

    claim: int
    text: str
    settings: tuple[str, ...]
    verdict: str
    parts: tuple[PartResult, ...]
    note: str = ""
    head: str = HEAD_LINEAR

    @property
    def evidence(self) -> str:
        parts = "; ".join(part.evidence for part in self.parts)
        return f"{parts} ({self.note})" if self.note else parts


def _max_dead(per_layer: dict[str, float]) -> float:
    return max(per_layer.values(), default=0.0)


def dead_after_first_epoch(run: RunResult) -> bool:
    return _max_dead(run.dead_first) > DEAD_LAYER_FRACTION


def alive_after_first_epoch(run: RunResult) -> bool:
    return not dead_after_first_epoch(run)


def dead_at_last_epoch(run: RunResult) -> bool:
    return run.died


def no_dead_unit(run: RunResult) -> bool:
    return _max_dead(run.dead_last) == 0.0


def learnt_nothing(run: RunResult) -> bool:
    return run.loss_ratio >= LEARNT_NOTHING_RATIO


def learns(run: RunResult) -> bool:
    return not learnt_nothing(run)


def gradients_vanish(run: RunResult) -> bool | None:
    if run.gradient_status in GRADIENTS_UNKNOWN:
        return None
    return run.gradient_status == GRADIENTS_VANISHING


def gradients_alive(run: RunResult) -> bool | None:
    if run.gradient_status in GRADIENTS_UNKNOWN:
        return None
    return run.gradient_status not in (GRADIENTS_VANISHING, GRADIENTS_ZERO)


def dead_or_gradients_gone(run: RunResult) -> bool:
    return run.died or run.gradient_status in (GRADIENTS_VANISHING, GRADIENTS_ZERO)


def _judge_share(holds: int, tested: int) -> str:
    if tested == 0:
        return NOT_TESTED
    share = holds / tested
    if share >= REPRODUCED_SHARE:
        return REPRODUCED
    if share <= NOT_REPRODUCED_SHARE:
        return NOT_REPRODUCED
    return PARTLY


def _judge_part(description: str, runs: Sequence[RunResult], check: Check, key: bool = False) -> PartResult:
    answers = [answer for answer in (check(run) for run in runs) if answer is not None]
    holds = sum(bool(answer) for answer in answers)
    return PartResult(description, holds, len(answers), _judge_share(holds, len(answers)), key)


def _judge_claim(parts: Sequence[PartResult]) -> str:
    # Parts no run could answer (filtered out by --only, no report) do not count.
    verdicts = {part.verdict for part in parts if part.verdict != NOT_TESTED}
    if not verdicts:
        return NOT_TESTED
    if any(part.key and part.verdict == NOT_REPRODUCED for part in parts):
        return NOT_REPRODUCED
    if verdicts == {REPRODUCED}:
        # Parts left out (by --only) may not be counted as holding.
        return REPRODUCED if all(part.verdict != NOT_TESTED for part in parts) else REPRODUCED_WHERE_TESTED
    if verdicts == {NOT_REPRODUCED}:
        return NOT_REPRODUCED
    return PARTLY


def judge_claim(
    number: int,
    text: str,
    groups: Sequence[tuple[str, Sequence[RunResult], Check]],
    note: str = "",
    key: str = "",
) -> ClaimResult:
    """``groups``: (part description, the runs that test it, the check each run answers);
    ``key``: the description of the key part, if the claim has one."""
    parts = tuple(
        _judge_part(description, runs, check, key=description == key) for description, runs, check in groups
    )
    settings = tuple(dict.fromkeys(run.spec.setting for _, runs, _ in groups for run in runs))
    return ClaimResult(number, text, settings, _judge_claim(parts), parts, note)


def _select(results: Sequence[RunResult], **wanted: object) -> list[RunResult]:
    """Runs whose spec matches every ``field=value`` (a tuple value means any of them)."""

    def matches(run: RunResult) -> bool:
        for key, value in wanted.items():
            actual = getattr(run.spec, key)
            if actual not in (value if isinstance(value, tuple) else (value,)):
                return False
        return True

    return [run for run in results if matches(run)]


def _best_other_loss(results: Sequence[RunResult], depth: int) -> float:
    """Lowest mean final validation loss among the non-SELU settings of one depth."""
    by_setting: dict[str, list[float]] = {}
    for run in results:
        if run.spec.depth == depth and run.spec.activation != "selu":
            by_setting.setdefault(run.spec.setting, []).append(run.val_loss[-1])
    return min((sum(losses) / len(losses) for losses in by_setting.values()), default=float("inf"))


def evaluate_claims(results: Sequence[RunResult]) -> tuple[ClaimResult, ...]:
    """The claims table: each observation 1-6 of the article, judged under each head the runs used.

    Under our linear head every claim has a row; under the article's head
    (every layer uses the activation, the output included), the claims its
    runs test (the ReLU ones, in the quick preset).
    """
    table: list[ClaimResult] = []
    for head in HEADS:
        runs = [run for run in results if run.spec.head == head]
        if not runs:
            continue
        claims = [replace(claim, head=head) for claim in _claims_of_one_head(runs)]
        table += claims if head == HEAD_LINEAR else [claim for claim in claims if claim.verdict != NOT_TESTED]
    return tuple(table)


def _claims_of_one_head(results: Sequence[RunResult]) -> tuple[ClaimResult, ...]:
    """One :class:`ClaimResult` per observation 1-6 of the article, on runs of one head."""
    dying = _select(results, activation="relu", initializer=BASE_INITIALIZER, variant=VARIANT_BASE)
    dying_d1 = [run for run in dying if run.spec.depth == 1]
    relu_inits = _select(
        results,
        activation="relu",
        initializer=("he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "random_uniform"),
        variant=VARIANT_BASE,
    )
    negative = _select(results, activation="relu", initializer="negative", variant=VARIANT_BASE)
    others = _select(results, activation=("tanh", "sigmoid", "leaky_relu"), variant=VARIANT_BASE)
    selu = _select(results, activation="selu")

    def beats_all_others(run: RunResult) -> bool:
        return run.val_loss[-1] <= _best_other_loss(results, run.spec.depth)

    def variant(name: str) -> list[RunResult]:
        return _select(results, activation="relu", initializer=BASE_INITIALIZER, depth=1, variant=name)

    base_died = sum(run.died for run in dying_d1)
    return (
        judge_claim(
            1,
            "ReLU, random init, 1 and 3 layers: gradients and outputs are 0 for all epochs; loss is flat",
            [
                ("dead after epoch 1", dying, dead_after_first_epoch),
                ("dead at the last epoch", dying, dead_at_last_epoch),
                ("loss flat", dying, learnt_nothing),
            ],
            key="dead at the last epoch",
        ),
        judge_claim(
            2,
            "More data, Dropout, more layers, more epochs: no help (units still die)",
            [
                ("more data: still dead", variant(VARIANT_MORE_DATA), dead_at_last_epoch),
                ("Dropout: still dead", variant(VARIANT_DROPOUT), dead_at_last_epoch),
                ("3 layers: still dead", [run for run in dying if run.spec.depth == 3], dead_at_last_epoch),
                ("more epochs: still dead", variant(VARIANT_MORE_EPOCHS), dead_at_last_epoch),
            ],
            note=f"the 1-layer model itself died in {base_died}/{len(dying_d1)} runs" if dying_d1 else "",
        ),
        judge_claim(
            3,
            "ReLU with he_normal/he_uniform/lecun_normal/lecun_uniform/random_uniform: "
            "slight improvement at first, then gradients go to 0",
            [
                ("alive after epoch 1", relu_inits, alive_after_first_epoch),
                ("dead or gradients gone at the last epoch", relu_inits, dead_or_gradients_gone),
            ],
            key="dead or gradients gone at the last epoch",
        ),
        judge_claim(
            4,
            "ReLU with negative init U(-1, 0): alive at first, outputs collapse to 0 as epochs go on",
            [
                ("alive after epoch 1", negative, alive_after_first_epoch),
                ("dead at the last epoch", negative, dead_at_last_epoch),
            ],
            key="dead at the last epoch",
        ),
        judge_claim(
            5,
            "tanh, sigmoid, LeakyReLU: no dead units, but gradients vanish; the model still learns slowly",
            [
                ("no dead unit", others, no_dead_unit),
                ("gradients vanish (report)", others, gradients_vanish),
                ("learns (loss below 90% of baseline)", others, learns),
            ],
        ),
        judge_claim(
            6,
            "SELU + lecun_normal + AlphaDropout: gradients move away from 0, outputs non-zero; best of all",
            [
                ("no dead unit", selu, no_dead_unit),
                ("gradients not vanishing (report)", selu, gradients_alive),
                ("lowest val loss of its depth", selu, beats_all_others),
            ],
        ),
    )

"""The LeNet article's findings on deep stacks, judged on the deep-stack runs. Pure; no TensorFlow.

Each finding is split into parts judged as the dying-ReLU replay's claims are
(:func:`keras_relu_doctor.replay.claims.judge_claim`: a part holds when 3 runs
in 4 show it). "Trains" and "learnt nothing" are :class:`StackResult`'s.

>>> from keras_relu_doctor.replay.deep_stack.grid import StackSpec
>>> runs = [StackResult(StackSpec("sigmoid", 8, seed=s), (2.3,), (2.3,), (0.1,), 0.1) for s in (0, 1)]
>>> [(claim.claim, claim.verdict) for claim in evaluate_stack_claims(runs)][:1]
[(1, 'reproduced where tested')]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from keras_relu_doctor.replay.claims import ClaimResult, judge_claim
from keras_relu_doctor.replay.deep_stack.grid import INIT_DEFAULT, INIT_LARGE
from keras_relu_doctor.replay.deep_stack.results import StackResult

# The article: sigmoid stacks train up to 6 blocks and stop past about 7.
SIGMOID_LIMIT_BLOCKS = 7
# "Vanishing from the last layer towards the first": the stem's gradient norm at
# least 100x below the last convolution's (the report's vanishing rule asks 1000x).
LAST_TO_FIRST_ORDERS = 2.0
# "Some layers at ~0 gradient": a convolution 100x below the run's median.
NEAR_ZERO_ORDERS = 2.0


def _select(results: Sequence[StackResult], **wanted: object) -> list[StackResult]:
    return [run for run in results if all(getattr(run.spec, key) == value for key, value in wanted.items())]


def trains(run: StackResult) -> bool:
    return run.trains


def learnt_nothing(run: StackResult) -> bool:
    return run.learnt_nothing


def _norms(run: StackResult) -> list[float] | None:
    norms = [norm for norm in run.grad_norms if norm is not None and math.isfinite(norm)]
    return norms if len(norms) >= 2 and len(norms) == len(run.grad_norms) else None


def vanish_last_to_first(run: StackResult) -> bool | None:
    """The stem's gradient is orders below the last convolution's (None: no gradients logged)."""
    norms = _norms(run)
    if norms is None:
        return None
    first, last = norms[0], norms[-1]
    return last > 0 and (first == 0 or math.log10(last / first) >= LAST_TO_FIRST_ORDERS)


def report_vanishing(run: StackResult) -> bool | None:
    return None if not run.verdict else "vanishing_gradients" in run.problems


def report_exploding(run: StackResult) -> bool | None:
    return None if not run.verdict else "exploding_gradients" in run.problems


def diverged(run: StackResult) -> bool:
    return run.diverged


def stays_finite(run: StackResult) -> bool:
    return not run.diverged


def some_layer_near_zero(run: StackResult) -> bool | None:
    norms = _norms(run)
    if norms is None:
        return None
    median = sorted(norms)[len(norms) // 2]
    return median > 0 and min(norms) <= median * 10**-NEAR_ZERO_ORDERS


def _failing_depths(results: Sequence[StackResult], activation: str) -> set[int]:
    """Depths at which the plain stack of ``activation`` learnt nothing in most seeds."""
    by_depth: dict[int, list[bool]] = {}
    for run in _select(results, activation=activation, form="plain", init=INIT_DEFAULT, clip=0.0):
        by_depth.setdefault(run.spec.blocks, []).append(run.learnt_nothing)
    return {depth for depth, nothing in by_depth.items() if sum(nothing) * 2 > len(nothing)}


def evaluate_stack_claims(results: Sequence[StackResult]) -> tuple[ClaimResult, ...]:
    """One row per finding of the article, in its order."""
    plain = [run for run in results if run.spec.form == "plain" and run.spec.init == INIT_DEFAULT and not run.spec.clip]
    sigmoid = [run for run in plain if run.spec.activation == "sigmoid"]
    relu = [run for run in plain if run.spec.activation == "relu"]
    sigmoid_fails, relu_fails = _failing_depths(results, "sigmoid"), _failing_depths(results, "relu")
    failing_plain = [run for run in plain if run.learnt_nothing]
    large = _select(results, init=INIT_LARGE, clip=0.0)
    large_clipped = [run for run in results if run.spec.init == INIT_LARGE and run.spec.clip]
    clipped_sigmoid = [run for run in results if run.spec.activation == "sigmoid" and run.spec.clip]

    def beyond_plain(form: str) -> list[StackResult]:
        # ReLU stacks of this form (the article's BatchNorm and ResBlock use ReLU) at
        # depths where the plain ReLU stack learnt nothing.
        return [run for run in _select(results, form=form, activation="relu") if run.spec.blocks in relu_fails]

    deepest = max((run.spec.blocks for run in results), default=0)
    deep_res = [run for run in _select(results, form="res", activation="relu") if run.spec.blocks == deepest]
    return (
        judge_claim(
            1,
            f"Sigmoid stacks stop training past about {SIGMOID_LIMIT_BLOCKS} blocks; ReLU stacks last longer",
            [
                (f"sigmoid, up to {SIGMOID_LIMIT_BLOCKS - 1} blocks: trains",
                 [run for run in sigmoid if run.spec.blocks < SIGMOID_LIMIT_BLOCKS], trains),
                (f"sigmoid, {SIGMOID_LIMIT_BLOCKS}+ blocks: learns nothing",
                 [run for run in sigmoid if run.spec.blocks >= SIGMOID_LIMIT_BLOCKS], learnt_nothing),
                ("ReLU trains where sigmoid learns nothing",
                 [run for run in relu if run.spec.blocks in sigmoid_fails], trains),
            ],  # fmt: skip
            key="ReLU trains where sigmoid learns nothing",
        ),
        judge_claim(
            2,
            "Gradients vanish from the last layer towards the first",
            [
                ("stem's gradient 100x below the last convolution's", failing_plain, vanish_last_to_first),
                ("the report finds vanishing_gradients", failing_plain, report_vanishing),
            ],
            note="plain stacks that learnt nothing",
            key="stem's gradient 100x below the last convolution's",
        ),
        judge_claim(
            3,
            "A large initializer, U(-0.5, 0.5), makes a ReLU stack explode",
            [
                ("loss diverges (NaN, or 10x the uniform guess's)", large, diverged),
                ("the report finds exploding_gradients", large, report_exploding),
            ],
        ),
        judge_claim(
            4,
            "Gradient clipping stops the explosion, not the vanishing",
            [
                ("large init, clipped: loss stays finite", large_clipped, stays_finite),
                ("deep sigmoid stack, clipped: still learns nothing", clipped_sigmoid, learnt_nothing),
            ],
        ),
        judge_claim(
            5,
            "BatchNorm holds a ReLU stack far deeper than without",
            [("BatchNorm trains where the plain stack learns nothing", beyond_plain("bn"), trains)],
        ),
        judge_claim(
            6,
            "Shortcuts train a ReLU stack at depths where nothing else does; layers at ~0 gradient do not block the others",
            [
                ("shortcuts train where the plain stack learns nothing", beyond_plain("res"), trains),
                (f"deepest ({deepest} blocks): a convolution 100x below the median gradient", deep_res,
                 some_layer_near_zero),
            ],  # fmt: skip
            key="shortcuts train where the plain stack learns nothing",
        ),
    )

"""The article's findings on loss spikes and pooling, judged on the loss-spikes runs. Pure; no TensorFlow.

Parts are judged as the other replays' claims are (3 runs in 4 make a part hold).

>>> from keras_relu_doctor.replay.spikes.grid import SpikeSpec
>>> runs = [SpikeResult(SpikeSpec(activation="prelu", seed=s), (1.0,), (0.9,), near_dead_units=3) for s in (0, 1)]
>>> {c.claim: c.verdict for c in evaluate_spike_claims(runs)}[4]
'reproduced'
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from keras_relu_doctor.replay.claims import ClaimResult, judge_claim
from keras_relu_doctor.replay.spikes.grid import HIGH_LR
from keras_relu_doctor.replay.spikes.results import SpikeResult


def _plain(run: SpikeResult) -> bool:
    """The high-rate ReLU model without any remedy."""
    spec = run.spec
    return spec.learning_rate == HIGH_LR and not spec.warmup_steps and spec.activation == "relu" and not spec.l2norm


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def evaluate_spike_claims(results: Sequence[SpikeResult]) -> tuple[ClaimResult, ...]:
    """One row per finding of the article, in its order."""
    plain_max = [run for run in results if _plain(run) and run.spec.pool == "max"]
    plain_avg = [run for run in results if _plain(run) and run.spec.pool == "avg"]
    plain = plain_max + plain_avg
    slower = [run for run in results if run.spec.pool == "max" and (run.spec.learning_rate != HIGH_LR or run.spec.warmup_steps)]
    low = [run for run in results if run.spec.learning_rate != HIGH_LR and not run.spec.warmup_steps]
    low_max = [run for run in low if run.spec.pool == "max"]
    low_avg_zeros = [run.pool_zero_share for run in low if run.spec.pool == "avg" and run.pool_zero_share is not None]
    prelu = [run for run in results if run.spec.activation == "prelu"]
    normalised = [run for run in results if run.spec.l2norm]
    avg_zeros = [run.pool_zero_share for run in plain_avg if run.pool_zero_share is not None]
    max_zeros = [run.pool_zero_share for run in plain_max if run.pool_zero_share is not None]
    high_first = [run.first_death for run in plain_max if run.first_death is not None]
    first_at_high = statistics.median(high_first) if high_first else None

    def more_zeros_than(avg: list[float]) -> Callable[[SpikeResult], bool | None]:
        def check(run: SpikeResult) -> bool | None:
            return None if run.pool_zero_share is None or not avg else run.pool_zero_share > max(avg)

        return check

    def later_first_death(run: SpikeResult) -> bool | None:
        if first_at_high is None:
            return None
        return run.first_death is None or run.first_death > first_at_high

    low_max_zeros = [run.pool_zero_share for run in low_max if run.pool_zero_share is not None]
    shares = "; ".join(
        f"pooled zeros at the {rate} rate: max {_mean(maxima):.0%}, avg {_mean(averages):.0%}"
        for rate, maxima, averages in (("high", max_zeros, avg_zeros), ("low", low_max_zeros, low_avg_zeros))
        if maxima and averages
    )
    return (
        judge_claim(
            1,
            "Max pooling leaves far more zeros in the pooled features than average pooling (~43% against ~12%)",
            [
                ("high rate: max pooling has more zeros than every average-pooling run", plain_max,
                 more_zeros_than(avg_zeros)),
                ("low rate: the same", low_max, more_zeros_than(low_avg_zeros)),
            ],  # fmt: skip
            note=shares,
        ),
        judge_claim(
            2,
            "Each loss spike leaves new dead units behind",
            [
                ("the loss spikes (report)", plain, lambda run: bool(run.spike_steps)),
                ("the report ties new deaths to a spike", plain, lambda run: run.deaths_at_spikes > 0),
            ],
            key="the report ties new deaths to a spike",
        ),
        judge_claim(
            3,
            "A lower learning rate or warmup only delays the deaths",
            [
                ("units still die", slower, lambda run: run.new_deaths > 0),
                ("first death later than at the high rate", slower, later_first_death),
            ],
            note="" if first_at_high is None else f"first death at the high rate: batch {first_at_high:g} (median)",
            key="units still die",
        ),
        judge_claim(
            4,
            "PReLU turns dead units into near-dead ones (~1e-7)",
            [
                ("no unit exactly dead", prelu, lambda run: run.dead_units == 0),
                ("near-dead units", prelu, lambda run: run.near_dead_units > 0),
            ],
            key="near-dead units",
        ),
        judge_claim(
            5,
            "An L2 normalisation after the max pool removes the spikes and the deaths",
            [
                ("no loss spike", normalised, lambda run: not run.spike_steps),
                ("no new dead unit", normalised, lambda run: run.new_deaths == 0),
            ],
        ),
    )

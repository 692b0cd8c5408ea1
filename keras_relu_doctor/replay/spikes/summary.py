"""The loss-spikes replay's tables: one row per setting, and the article's findings. No TensorFlow.

>>> from keras_relu_doctor.replay.spikes.grid import SpikeSpec
>>> runs = [SpikeResult(SpikeSpec(), (0.5,), (0.9,), verdict="dying_relu", spike_steps=(20, 40), deaths_at_spikes=3,
...                     dead_units=10, units=128, first_death=20, pool_zero_share=0.5) for _ in range(2)]
>>> setting_cells(summarize_spikes(runs)[0])
['max', '2', '2.0', '6', '10.0/128', '0.0', '20', '50%', '0.90', 'dying_relu']
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from keras_relu_doctor.replay.spikes.claims import evaluate_spike_claims
from keras_relu_doctor.replay.spikes.model import RECTIFIED
from keras_relu_doctor.replay.spikes.results import SpikeResult
from keras_relu_doctor.replay.summary import Table, TablesSummary, findings_table, mean_of, most_common, reports_by_run
from keras_relu_doctor.tags import TRAIN_SUBDIR, ZERO_FRACTION, tag

SETTING_COLUMNS = ("setting", "seeds", "spikes", "deaths at spikes", "dead units", "near-dead", "first death",
                   "pooled zeros", "val acc", "verdict")  # fmt: skip
# Left out first on a narrow terminal: the units dead and the verdict stay, with the spikes they follow.
SETTING_DROP_ORDER = ("seeds", "near-dead", "val acc", "pooled zeros", "first death", "deaths at spikes")


@dataclass(frozen=True)
class SpikeRow:
    """A setting over its seeds: mean loss spikes, units that died at spikes (all seeds), mean dead and
    near-dead units of all rectified units, median first death in training (batch), mean pooled zero share and accuracy."""

    setting: str
    runs: int
    spikes: float
    deaths_at_spikes: int
    dead_units: float
    units: int
    near_dead_units: float
    first_death: float | None
    pool_zero_share: float | None
    accuracy: float
    verdict: str


def summarize_spikes(results: Sequence[SpikeResult]) -> tuple[SpikeRow, ...]:
    groups: dict[str, list[SpikeResult]] = {}
    for run in results:
        groups.setdefault(run.spec.setting, []).append(run)
    rows = []
    for setting, runs in groups.items():
        firsts = [run.first_death for run in runs if run.first_death is not None]
        zeros = [run.pool_zero_share for run in runs if run.pool_zero_share is not None]
        rows.append(SpikeRow(
            setting=setting,
            runs=len(runs),
            spikes=round(mean_of([len(run.spike_steps) for run in runs]), 1),
            deaths_at_spikes=sum(run.deaths_at_spikes for run in runs),
            dead_units=round(mean_of([run.dead_units for run in runs]), 1),
            units=max(run.units for run in runs),
            near_dead_units=round(mean_of([run.near_dead_units for run in runs]), 1),
            first_death=statistics.median(firsts) if firsts else None,
            pool_zero_share=round(mean_of(zeros), 3) if zeros else None,
            accuracy=round(mean_of([run.accuracy for run in runs]), 3),
            verdict=most_common([run.verdict for run in runs]),
        ))  # fmt: skip
    return tuple(rows)


def setting_cells(row: SpikeRow) -> list[str]:
    return [
        row.setting,
        str(row.runs),
        f"{row.spikes:.1f}",
        str(row.deaths_at_spikes),
        f"{row.dead_units:.1f}/{row.units}",
        f"{row.near_dead_units:.1f}",
        "none" if row.first_death is None else f"{row.first_death:g}",
        "n/a" if row.pool_zero_share is None else f"{row.pool_zero_share:.0%}",
        f"{row.accuracy:.2f}",
        row.verdict,
    ]



def _rectified_layers(run: SpikeResult) -> tuple[str, ...]:
    return tuple(f"{name}_act" for name in RECTIFIED) if run.spec.activation == "prelu" else RECTIFIED


def attach_spike_report(results: Sequence[SpikeResult], logdir: str | Path) -> tuple[SpikeResult, ...]:
    """The results with the report's reading: spikes, deaths at them, dead and near-dead units, pooled zeros."""
    from keras_relu_doctor.diagnose.dying import unit_deaths
    from keras_relu_doctor.events import read_logdir

    read = read_logdir(str(logdir), f"*/{TRAIN_SUBDIR}")
    by_name = reports_by_run(read)
    runs = {run.path.split("/")[0]: run for run in read.runs}
    attached = []
    for result in results:
        report = by_name.get(result.spec.name)
        if report is None:
            attached.append(replace(result, verdict="no_data"))
            continue
        layers = [layer for layer in report.layers if layer.name in _rectified_layers(result)]
        spikes = next((f.evidence.get("spike_steps", ()) for f in report.findings if f.kind == "loss_spikes"), ())
        at_spikes = sum(
            int(count) for f in report.findings for count in f.evidence.get("deaths_at_loss_spikes", {}).values()
        )
        run = runs[result.spec.name]
        # Units dead at the end and alive at the first log, with the step they died (dead for good).
        died = [
            step
            for name in _rectified_layers(result)
            if name in run.units
            for step in unit_deaths(run.units[name]).death_steps.values()
            if step > int(run.units[name].steps[0])
        ]
        zeros = run.scalars.get(tag("pool", ZERO_FRACTION))
        tail = None if zeros is None or not len(zeros.values) else zeros.values[-max(len(zeros.values) // 4, 1) :]
        attached.append(
            replace(
                result,
                verdict=report.verdict,
                problems=tuple(report.problems),
                spike_steps=tuple(int(step) for step in spikes),
                deaths_at_spikes=at_spikes,
                dead_units=sum(len(layer.dead_units) for layer in layers),
                near_dead_units=sum(len(layer.near_dead_units) for layer in layers),
                dead_at_start=sum(len(layer.dead_units) for layer in layers) - len(died),
                units=sum(layer.units or 0 for layer in layers),
                first_death=min(died) if died else None,
                pool_zero_share=None if tail is None else round(float(tail.mean()), 4),
            )
        )
    return tuple(attached)


@dataclass(frozen=True)
class SpikeSummary(TablesSummary):
    """The loss-spikes replay's rows, findings and runs."""

    def tables(self) -> list[Table]:
        """The settings and the findings, for the terminal and the markdown file."""
        return [
            Table("Loss spikes, one row per setting: the probe loss's spikes, units that died at them (all seeds), "
                  "dead and near-dead units of all rectified units, first death (batch), zeros in the pooled features",
                  SETTING_COLUMNS, [setting_cells(row) for row in self.settings], SETTING_DROP_ORDER),
            findings_table("The article's findings on loss spikes and pooling", self.claims),
        ]  # fmt: skip


def build_spike_summary(results: Sequence[SpikeResult], options: dict[str, Any]) -> SpikeSummary:
    return SpikeSummary(dict(options), summarize_spikes(results), evaluate_spike_claims(results), tuple(results))

"""The deep-stack replay's tables: one row per setting, and the article's findings. No TensorFlow.

>>> from keras_relu_doctor.replay.deep_stack.grid import StackSpec
>>> runs = [StackResult(StackSpec("relu", 8, seed=s), (0.5,), (0.4,), (0.9,), 0.1, verdict="healthy",
...                     grad_norms=(0.01, 0.1, 1.0)) for s in (0, 1)]
>>> setting_cells(summarize_stacks(runs)[0])
['relu-b8', '2', '2/2', '0.90', '0.4000', 'healthy', '', '2.0']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from keras_relu_doctor.replay.deep_stack.claims import evaluate_stack_claims
from keras_relu_doctor.replay.deep_stack.model import conv_layer_names
from keras_relu_doctor.replay.deep_stack.results import StackResult
from keras_relu_doctor.replay.summary import Table, TablesSummary, findings_table, mean_of, most_common, reports_by_run

SETTING_COLUMNS = ("setting", "seeds", "trains", "val acc", "val loss", "verdict", "vanishing up to", "last/stem grad, orders")
# Left out first on a narrow terminal: "trains" sums up the accuracy, the verdict and "vanishing up to" the gradients.
SETTING_DROP_ORDER = ("seeds", "val loss", "last/stem grad, orders", "val acc", "vanishing up to")


@dataclass(frozen=True)
class StackRow:
    """A setting over its seeds: runs that train, mean final accuracy and loss, the report's verdict,
    the output-most layer of its vanishing finding, and the median of log10(last conv's gradient / stem's)."""

    setting: str
    runs: int
    trains: str
    accuracy: float
    val_loss: float
    verdict: str
    vanishing_up_to: str
    gradient_orders: float | None


def _orders(run: StackResult) -> float | None:
    """log10(last convolution's gradient norm / the stem's); inf where the stem's is exactly 0."""
    norms = run.grad_norms
    if len(norms) < 2 or norms[0] is None or norms[-1] is None:
        return None
    first, last = norms[0], norms[-1]
    if not (math.isfinite(first) and math.isfinite(last) and last > 0 and first >= 0):
        return None
    return math.inf if first == 0 else math.log10(last / first)


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def summarize_stacks(results: Sequence[StackResult]) -> tuple[StackRow, ...]:
    groups: dict[str, list[StackResult]] = {}
    for run in results:
        groups.setdefault(run.spec.setting, []).append(run)
    rows = []
    for setting, runs in groups.items():
        orders = [value for value in (_orders(run) for run in runs) if value is not None]
        rows.append(
            StackRow(
                setting=setting,
                runs=len(runs),
                trains=f"{sum(run.trains for run in runs)}/{len(runs)}",
                accuracy=round(mean_of([run.accuracy for run in runs]), 3),
                val_loss=round(mean_of([run.val_loss[-1] for run in runs]), 4),
                verdict=most_common([run.verdict for run in runs]),
                vanishing_up_to=most_common([run.vanishing_layers[-1] if run.vanishing_layers else "" for run in runs])
                if any(run.vanishing_layers for run in runs) else "",
                gradient_orders=None if not orders else round(_median(orders), 1),  # inf stays inf
            )
        )
    return tuple(rows)


def setting_cells(row: StackRow) -> list[str]:
    return [
        row.setting,
        str(row.runs),
        row.trains,
        f"{row.accuracy:.2f}",
        f"{row.val_loss:.4f}",
        row.verdict,
        row.vanishing_up_to,
        _orders_cell(row.gradient_orders),
    ]


def _orders_cell(orders: float | None) -> str:
    if orders is None:
        return "n/a"
    return "stem 0" if math.isinf(orders) else f"{orders:.1f}"



def attach_stack_report(results: Sequence[StackResult], logdir: str | Path) -> tuple[StackResult, ...]:
    """The results with the report's verdict, problems, per-convolution gradient norms and vanishing layers."""
    by_name = reports_by_run(logdir)
    attached = []
    for run in results:
        run_report = by_name.get(run.spec.name)
        if run_report is None:
            attached.append(replace(run, verdict="no_data"))
            continue
        layers = {layer.name: layer for layer in run_report.layers}
        norms = tuple(
            layers[name].last_grad_norm if name in layers else None for name in conv_layer_names(run.spec.blocks)
        )
        vanishing = next((f for f in run_report.findings if f.kind == "vanishing_gradients"), None)
        attached.append(
            replace(
                run,
                verdict=run_report.verdict,
                problems=tuple(run_report.problems),
                grad_norms=norms,
                vanishing_layers=tuple(vanishing.evidence.get("layers", ())) if vanishing else (),
            )
        )
    return tuple(attached)


@dataclass(frozen=True)
class StackSummary(TablesSummary):
    """The deep-stack replay's rows, findings and runs."""

    def tables(self) -> list[Table]:
        """The settings and the findings, for the terminal and the markdown file."""
        return [
            Table("Deep stacks, one row per setting: seeds that train (val accuracy >= 3x chance), the report's verdict "
                  "and where vanishing reaches, orders of magnitude between the last convolution's gradient and the stem's",
                  SETTING_COLUMNS, [setting_cells(row) for row in self.settings], SETTING_DROP_ORDER),
            findings_table("The article's findings on deep stacks", self.claims),
        ]  # fmt: skip


def build_stack_summary(results: Sequence[StackResult], options: dict[str, Any]) -> StackSummary:
    return StackSummary(dict(options), summarize_stacks(results), evaluate_stack_claims(results), tuple(results))

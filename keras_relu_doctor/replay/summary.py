"""The replay's tables: per-setting comparison and the article's claims; written as
``summary.md`` and ``summary.json``, shown with rich on the terminal. No TensorFlow.

>>> from keras_relu_doctor.replay.grid import RunSpec
>>> runs = [RunResult(RunSpec("relu", "random_uniform", 1, seed), {"dense_1": 1.0}, {"dense_1": 1.0},
...                   (0.6, 0.6), (0.6, 0.6), 0.6, verdict="dying_relu", gradient_status="zero")
...         for seed in (0, 1)]
>>> row = summarize(runs)[0]
>>> row.setting, row.died, row.dead_last, row.verdict
('relu-random_uniform-d1', '2/2', 1.0, 'dying_relu')
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from keras_relu_doctor.replay.claims import ClaimResult, evaluate_claims
from keras_relu_doctor.replay.model import measured_layer
from keras_relu_doctor.replay.results import SCHEMA_VERSION, RunResult, network_dead_fraction
from keras_relu_doctor.tags import TRAIN_SUBDIR

SUMMARY_MD = "summary.md"
SUMMARY_JSON = "summary.json"


@dataclass(frozen=True)
class SettingRow:
    """One row of the comparison table: a setting over its seeds.

    ``died``: seeds in which some hidden layer had more than half its units dead
    at the last epoch. ``dead_first``/``dead_last``: mean over seeds of the share of all
    hidden units that are dead after the first/last epoch. Losses are means.
    ``gradients`` and ``verdict``: the report's, the most common over seeds
    (``"dying_relu 1/2"`` when seeds disagree).
    """

    setting: str
    runs: int
    died: str
    dead_first: float
    dead_last: float
    gradients: str
    train_loss: float
    val_loss: float
    baseline_val_loss: float
    verdict: str


def mean_of(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def most_common(values: Sequence[str]) -> str:
    counts = Counter(value or "n/a" for value in values)
    value, count = counts.most_common(1)[0]
    return value if count == len(values) else f"{value} {count}/{len(values)}"


def summarize(results: Sequence[RunResult]) -> tuple[SettingRow, ...]:
    """Group runs by setting (grid order kept) into comparison rows."""
    groups: dict[str, list[RunResult]] = {}
    for run in results:
        groups.setdefault(run.spec.setting, []).append(run)
    return tuple(
        SettingRow(
            setting=setting,
            runs=len(runs),
            died=f"{sum(run.died for run in runs)}/{len(runs)}",
            dead_first=round(mean_of([network_dead_fraction(run.dead_first) for run in runs]), 3),
            dead_last=round(mean_of([network_dead_fraction(run.dead_last) for run in runs]), 3),
            gradients=most_common([run.gradient_status for run in runs]),
            train_loss=round(mean_of([run.train_loss[-1] for run in runs]), 4),
            val_loss=round(mean_of([run.val_loss[-1] for run in runs]), 4),
            baseline_val_loss=round(mean_of([run.baseline_val_loss for run in runs]), 4),
            verdict=most_common([run.verdict for run in runs]),
        )
        for setting, runs in groups.items()
    )


def reports_by_run(logdir: str | Path | Any) -> dict[str, Any]:
    """The report of each run's callback folder (``<run>/train``), by run name; ``logdir`` a path or a ``Logdir`` read."""
    from keras_relu_doctor.report import build_report

    # Only the callbacks' "train" folders: "validation" holds Keras' loss curves alone.
    report = build_report(logdir if not isinstance(logdir, (str, Path)) else str(logdir), run_glob=f"*/{TRAIN_SUBDIR}")
    # The report names a run by its folder under the logdir: "<run>/train".
    return {run_report.run.split("/")[0]: run_report for run_report in report.runs}


# Worst first: a hidden layer with no gradient matters more than a healthy head.
GRADIENT_STATUS_ORDER = ("nan", "exploding", "vanishing", "zero", "ok")


def hidden_gradient_status(layers: Sequence[Any], head: str = "linear") -> str:
    """The worst gradient status (the report's, per layer) of the measured layers.

    The report's run-level status lets a healthy output layer stand for the run;
    the replay asks about the hidden layers, where units die (and the output
    unit under the article's head, which dies too).

    >>> from types import SimpleNamespace as Layer
    >>> hidden_gradient_status([Layer(name="dense_1", grad_status="zero"), Layer(name="output", grad_status="ok")])
    'zero'
    """
    statuses = {layer.grad_status for layer in layers if measured_layer(layer.name, head)}
    return next((status for status in GRADIENT_STATUS_ORDER if status in statuses), "unknown")


def attach_report(results: Sequence[RunResult], logdir: str | Path) -> tuple[RunResult, ...]:
    """The results with the report's verdict, gradient status and problems filled in."""
    by_name = reports_by_run(logdir)
    attached = []
    for run in results:
        run_report = by_name.get(run.spec.name)
        if run_report is None:
            attached.append(replace(run, verdict="no_data", gradient_status="n/a"))
            continue
        attached.append(
            replace(
                run,
                verdict=run_report.verdict,
                gradient_status=hidden_gradient_status(run_report.layers, run.spec.head),
                problems=tuple(run_report.problems),
            )
        )
    return tuple(attached)


# Column headers of the two tables, shared by the markdown file and the terminal.
SETTING_COLUMNS = (
    "setting",
    "seeds",
    "died",
    "dead ep 1",
    "dead last",
    "gradients",
    "train loss",
    "val loss",
    "baseline",
    "verdict",
)
CLAIM_COLUMNS = ("#", "head", "article's claim", "result", "numbers")
# The claims of experiments with one model family (no head column): ``claim_row``'s cells.
FINDING_COLUMNS = ("#", "the article's finding", "result", "numbers")

# Columns a narrow terminal leaves out, least important first (``render.fit_table``); the others always stay.
# The seeds are in every "died" cell's denominator; the losses sum up less than the deaths and the verdict.
SETTING_DROP_ORDER = ("seeds", "baseline", "val loss", "train loss", "dead ep 1", "gradients")
# The numbers behind a result go first; the head stays while it can, since claims 1-3 are judged under both.
CLAIM_DROP_ORDER = ("numbers", "head")
FINDING_DROP_ORDER = ("numbers",)


class Table(NamedTuple):
    """One of a summary's tables: title, columns, rows, and the columns a narrow terminal leaves out first.

    >>> Table("Claims", FINDING_COLUMNS, [], FINDING_DROP_ORDER).drop_order
    ('numbers',)
    """

    title: str
    columns: Sequence[str]
    rows: list[list[str]]
    drop_order: Sequence[str] = ()


def setting_cells(row: SettingRow) -> list[str]:
    return [
        row.setting,
        str(row.runs),
        row.died,
        f"{row.dead_first:.2f}",
        f"{row.dead_last:.2f}",
        row.gradients,
        f"{row.train_loss:.4f}",
        f"{row.val_loss:.4f}",
        f"{row.baseline_val_loss:.4f}",
        row.verdict,
    ]


def claim_cells(claim: ClaimResult) -> list[str]:
    return [str(claim.claim), claim.head, claim.text, claim.verdict, claim.evidence]


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table.

    >>> print(markdown_table(["a", "b"], [["1", "x|y"]]))
    | a | b |
    | --- | --- |
    | 1 | x\\|y |
    """
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class TablesSummary:
    """A replay summary whose markdown and JSON follow its ``tables()``: rows, claims and runs.

    Subclasses give ``tables()`` and their ``schema`` (the results' schema version).
    """

    options: dict[str, Any]
    settings: tuple[Any, ...]
    claims: tuple[ClaimResult, ...]
    runs: tuple[Any, ...]
    schema: int = SCHEMA_VERSION

    def tables(self) -> list[Table]:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON form; per-run timings are left out so two identical replays write the same file."""
        runs = [{key: value for key, value in asdict(run).items() if key != "seconds"} for run in self.runs]
        return {
            "schema": self.schema,
            "options": self.options,
            "settings": [asdict(row) for row in self.settings],
            "claims": [{**asdict(claim), "evidence": claim.evidence} for claim in self.claims],
            "runs": runs,
        }

    def backend_line(self) -> str:
        """The line that opens ``summary.md``: which Keras backend trained the runs (TensorFlow before it was an option).

        >>> ReplaySummary({"backend": "jax"}, (), (), ()).backend_line()
        'Trained on Keras backend `jax`.'
        """
        return f"Trained on Keras backend `{self.options.get('backend', 'tensorflow')}`."

    def to_markdown(self) -> str:
        return f"{self.backend_line()}\n\n" + "\n".join(f"## {table.title}\n\n{markdown_table(table.columns, table.rows)}\n" for table in self.tables())


@dataclass(frozen=True)
class ReplaySummary(TablesSummary):
    """Everything the replay concludes: rows, claims, and the runs behind them."""

    def tables(self) -> list[Table]:
        """The settings and the claims, as the terminal shows them."""
        return [
            Table("Replay, one row per setting: seeds where units died, mean share of dead hidden units, "
                  "the report's gradients and verdict", SETTING_COLUMNS, [setting_cells(row) for row in self.settings],
                  SETTING_DROP_ORDER),
            Table("The article's claims", CLAIM_COLUMNS, [claim_cells(claim) for claim in self.claims], CLAIM_DROP_ORDER),
        ]  # fmt: skip

    def to_markdown(self) -> str:
        return "\n".join(
            [
                self.backend_line(),
                "",
                "## Settings",
                "",
                markdown_table(SETTING_COLUMNS, [setting_cells(row) for row in self.settings]),
                "",
                "## The article's claims",
                "",
                markdown_table(CLAIM_COLUMNS, [claim_cells(claim) for claim in self.claims]),
                "",
            ]
        )


def build_summary(results: Sequence[RunResult], options: dict[str, Any]) -> ReplaySummary:
    """Rows and claims from the (report-attached) results."""
    return ReplaySummary(dict(options), summarize(results), evaluate_claims(results), tuple(results))


def write_summary(summary: TablesSummary, logdir: str | Path) -> tuple[Path, Path]:
    """Write ``summary.md`` and ``summary.json`` next to the runs; return their paths."""
    markdown_path = Path(logdir) / SUMMARY_MD
    json_path = Path(logdir) / SUMMARY_JSON
    markdown_path.write_text(summary.to_markdown())
    json_path.write_text(json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
    return markdown_path, json_path


def claim_row(claim: ClaimResult) -> list[str]:
    """A claims-table row without the head column (experiments with one model family): ``FINDING_COLUMNS``."""
    return [str(claim.claim), claim.text, claim.verdict, claim.evidence]


def findings_table(title: str, claims: Sequence[ClaimResult]) -> Table:
    """The claims table of an experiment with one model family (no head column)."""
    return Table(title, FINDING_COLUMNS, [claim_row(claim) for claim in claims], FINDING_DROP_ORDER)

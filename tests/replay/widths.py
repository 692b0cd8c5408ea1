"""Re-printing a finished replay's tables at a given terminal width, and what a reader checks in them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from keras_relu_doctor.cli.main import main


def tables_at(logdir: Path, columns: int, *options: str) -> str:
    """The command's output when run again on a finished logdir (every run reused) at ``columns``."""
    outcome = CliRunner().invoke(main, ["replay", str(logdir), *options], env={"COLUMNS": str(columns)}, catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output
    return outcome.output


def check_fits(logdir: Path, output: str, columns: int) -> None:
    """Every line fits, and every setting's verdict is printed whole (never folded)."""
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert any("verdict" in line.split() or "│ verdict" in line or "┃ verdict" in line for line in lines)  # headers break between words
    settings = json.loads((logdir / "summary.json").read_text())["settings"]
    for row in settings:
        cells = next(line.split("│") for line in lines if line.startswith("│") and line.split("│")[1].strip() == row["setting"])
        assert row["verdict"] in [cell.strip() for cell in cells], (row["setting"], cells)

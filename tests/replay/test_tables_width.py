"""The replay's terminal tables at 80, 120 and 200 columns, drawn from the summaries of tiny real replays:
nothing past the edge, no cell broken inside a word, and the columns left out named, in each table's order."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from keras_relu_doctor.cli.replay import print_tables
from keras_relu_doctor.render.fit_table import DROP_ORDER, SLASH, WRAPPING
from keras_relu_doctor.replay.grid import ReplayOptions
from keras_relu_doctor.replay.summary import Table

pytestmark = pytest.mark.slow

# One tiny grid per experiment; the dying one has the longest setting names and both heads.
TINY = {
    "dying": ReplayOptions(only="relu-random_uniform-d1-more_epochs*", seeds=1, epochs=1, samples=200),
    "deep-stack": ReplayOptions(only="relu-b2-res", seeds=1, epochs=1, samples=200, experiment="deep-stack"),
    "spikes": ReplayOptions(only="max-l*", seeds=1, epochs=1, samples=256, experiment="spikes"),
}
ELLIPSIS = "…"


@pytest.fixture(scope="session")
def replays(tmp_path_factory) -> dict[str, tuple[Any, Path]]:
    """Each experiment's summary and logdir, from a real (tiny) replay."""
    from keras_relu_doctor.replay.experiment import run_replay

    done = {}
    for experiment, options in TINY.items():
        logdir = tmp_path_factory.mktemp(experiment) / "logs"
        done[experiment] = (run_replay(logdir, options, jobs=2), logdir)
    return done


def drawn(table: Table, width: int, logdir: Path) -> list[str]:
    """The lines ``relu-doctor replay`` prints for ``table`` on a terminal ``width`` columns wide."""
    console = Console(file=io.StringIO(), width=width)
    print_tables(console, SimpleNamespace(tables=lambda: [table]), str(logdir))
    return console.file.getvalue().splitlines()


def left_out(lines: list[str], width: int, logdir: Path) -> list[str] | None:
    """The columns named under the table (its note may wrap), or None when there is no note."""
    text = " ".join(" ".join(lines[max(index for index, line in enumerate(lines) if line.startswith("└")) + 1 :]).split())
    if not text:
        return None
    note = re.fullmatch(rf"Left out to fit {width} columns: (.*); {re.escape(str(logdir))}/summary\.md has every column\.", text)
    assert note, text
    return re.findall(r'"([^"]*)"', note.group(1))


def grid_cells(lines: list[str], mark: str) -> list[list[str]]:
    """The cells of the lines starting with ``mark`` (┃ the header, │ the body), one list per line."""
    return [[cell.strip() for cell in line.split(mark)[1:-1]] for line in lines if line.startswith(mark)]


def body_rows(lines: list[str]) -> list[list[list[str]]]:
    """The body's rows, each a list of its lines' cells: split by ├ lines where rows have several, else one a line."""
    body = lines[next(index for index, line in enumerate(lines) if line.startswith("┡")) + 1 :]
    if not any(line.startswith("├") for line in body):
        return [[cells] for cells in grid_cells(body, "│")]
    rows: list[list[list[str]]] = [[]]
    for line in body:
        if line.startswith("├"):
            rows.append([])
        elif line.startswith("│"):
            rows[-1].append(grid_cells([line], "│")[0])
    return rows


def check_cell(column: str, shown: list[str], value: str) -> None:
    """A cell printed whole: on one line (cut in the middle for a setting name), or prose broken only
    between words or after a slash."""
    if column in WRAPPING:
        pieces = [SLASH.split(word) for word in value.split()]  # a word, or a run of its slash-ended parts
        words = {"".join(parts[start:end]) for parts in pieces for start in range(len(parts)) for end in range(start + 1, len(parts) + 1)}
        assert all(token in words for line in shown for token in line.split()), (shown, value)
        assert "".join("".join(shown).split()) == "".join(value.split())
        return
    lines = [line for line in shown if line]
    assert len(lines) <= 1, (column, shown)
    cell = lines[0] if lines else ""
    if column == "setting" and ELLIPSIS in cell:
        head, tail = cell.split(ELLIPSIS)
        assert value.startswith(head) and value.endswith(tail) and len(cell) < len(value)
    else:
        assert cell == value, (column, cell, value)


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("experiment", sorted(TINY))
def test_every_table_fits_whole_cells_and_names_what_it_leaves_out(replays, experiment, width):
    summary, logdir = replays[experiment]
    for table in summary.tables():
        lines = drawn(table, width, logdir)
        assert max(map(len, lines)) <= width, "\n".join(lines)
        dropped = left_out(lines, width, logdir) or []
        kept = [index for index, column in enumerate(table.columns) if column not in dropped]
        # Left out in the table's own order: the first few of its drop order, and nothing else.
        assert dropped == [column for column in table.columns if column in table.drop_order[: len(dropped)]]
        headers = [" ".join(filter(None, parts)) for parts in zip(*grid_cells(lines, "┃"))]
        assert headers == [table.columns[index] for index in kept]  # headers broken between words only
        rows = body_rows(lines)
        assert len(rows) == len(table.rows)
        for row, shown in zip(table.rows, rows):
            for position, index in enumerate(kept):
                check_cell(table.columns[index], [line[position] for line in shown], row[index])


@pytest.mark.parametrize("experiment", sorted(TINY))
def test_two_hundred_columns_leave_nothing_out(replays, experiment):
    summary, logdir = replays[experiment]
    for table in summary.tables():
        lines = drawn(table, 200, logdir)
        assert max(map(len, lines)) <= 200 and left_out(lines, 200, logdir) is None
        assert [" ".join(filter(None, parts)) for parts in zip(*grid_cells(lines, "┃"))] == list(table.columns)


@pytest.mark.parametrize("experiment", sorted(TINY))
def test_drop_orders_name_the_tables_columns_in_the_shared_order(replays, experiment):
    summary, _ = replays[experiment]
    for table in summary.tables():
        assert set(table.drop_order) <= set(table.columns) and "verdict" not in table.drop_order
        assert list(table.drop_order) == [name for name in DROP_ORDER if name in table.drop_order]
        assert table.columns[0] not in table.drop_order  # the setting (or the claim's number) always stays


def test_the_command_fits_80_columns_when_piped(replays):
    summary, logdir = replays["dying"]
    options = asdict(TINY["dying"])
    command = [sys.executable, "-c", "from keras_relu_doctor.cli.main import main; main()", "replay", str(logdir)]
    command += ["--only", options["only"], "--seeds", "1", "--epochs", "1", "--samples", str(options["samples"])]
    outcome = subprocess.run(command, env={**os.environ, "COLUMNS": "80"}, capture_output=True, text=True, timeout=300)
    assert outcome.returncode == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert max(map(len, lines)) <= 80, outcome.stdout
    assert "Left out to fit 80 columns:" in outcome.stdout
    shown = [[cell.strip() for cell in line.split("│")] for line in lines if line.startswith("│")]
    for row in summary.tables()[0].rows:  # each setting and its verdict, whole, on one line
        assert [row[0], row[-1]] in [[cells[1], cells[-2]] for cells in shown], (row, outcome.stdout)

"""``relu-doctor compare``: a run that dies beside the one that does not, in a few lines."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from keras_relu_doctor import tags
from keras_relu_doctor.cli.main import main
from keras_relu_doctor.events.writer import EventWriter

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)


def _write(folder, dead: int) -> None:
    with EventWriter(folder / "train") as writer:
        for step in range(3):
            max_abs = np.array([0.0] * dead + [1.0] * (8 - dead), dtype=np.float32)
            writer.units("dense/units", np.stack([max_abs > 0, max_abs]), step, METADATA)
            writer.scalar("dense/grad_norm", 0.0 if dead == 8 else 0.25, step)
            writer.units("head/units", np.ones((2, 1)), step, METADATA)
            writer.scalar("head/grad_norm", 0.5, step)


def _compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)], env={"COLUMNS": "80"})


def test_dying_and_healthy_side_by_side(tmp_path):
    _write(tmp_path / "relu-negative", dead=8)
    _write(tmp_path / "leaky", dead=0)
    result = _compare(tmp_path, "relu-negative", "leaky/train")  # '/train' may be left out
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["relu-negative", "leaky"]
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith(" ")}
    assert rows["verdict"].split()[1:] == ["dying_relu", "healthy"]
    assert "8 of 9 (dense)" in rows["dead"] and "0 of 9" in rows["dead"]
    assert "zero: 0 to 0.5" in rows["gradient"]
    assert max(map(len, lines)) <= 80
    assert len(lines) <= 10


def test_a_run_not_found_is_one_line_naming_the_runs(tmp_path):
    _write(tmp_path / "a", dead=0)
    result = _compare(tmp_path, "a", "b")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"relu-doctor compare: error: no run 'b' (nor 'b/train') under '{tmp_path}'; runs: a/train"
    ]


def test_runs_keep_the_order_asked_and_long_names_are_cut_in_the_middle(tmp_path):
    long_a, long_b = "relu-random_uniform-d1-more_epochs-article-s0", "relu-random_uniform-d1-more_epochs-article-s1"
    _write(tmp_path / long_a, dead=0)
    _write(tmp_path / long_b, dead=8)
    result = _compare(tmp_path, long_a, long_b)  # the healthy run first, as asked
    assert result.exit_code == 0, result.output
    header, verdicts = result.output.splitlines()[:2]
    assert verdicts.split()[1:] == ["healthy", "dying_relu"]
    first, second = header.split()
    assert "…" in first and first.endswith("s0") and second.endswith("s1")
    assert max(map(len, result.output.splitlines())) <= 80

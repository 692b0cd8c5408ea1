"""``relu-doctor report``: formats, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from keras_relu_doctor import tags
from keras_relu_doctor.cli.main import main
from keras_relu_doctor.events.writer import EventWriter

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)


def _dead_logdir(folder) -> str:
    with EventWriter(folder / "train") as writer:
        for step in range(3):
            max_abs = np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
            writer.units("dense/units", np.stack([max_abs > 0, max_abs]), step, METADATA)
            writer.scalar("dense/grad_norm", 0.1, step)
    return writer.path


def _invoke(*args):
    return CliRunner().invoke(main, ["report", *map(str, args)])


def test_text_report_and_fail_on(tmp_path):
    _dead_logdir(tmp_path)
    result = _invoke(tmp_path)
    assert result.exit_code == 0, result.output
    assert "run train: dying_relu" in result.output
    assert _invoke(tmp_path, "--fail-on", "dying_relu").exit_code == 1
    assert _invoke(tmp_path, "--fail-on", "exploding_gradients,saturation").exit_code == 0
    assert _invoke(tmp_path, "--fail-on", "any").exit_code == 1
    assert _invoke(tmp_path, "--dead-threshold", "0.9").exit_code == 0
    assert "healthy" in _invoke(tmp_path, "--dead-threshold", "0.9").output


@pytest.mark.parametrize("output_format", ["json", "markdown", "html"])
def test_formats_written_to_a_file(tmp_path, output_format):
    _dead_logdir(tmp_path / "logs")
    target = tmp_path / f"report.{output_format}"
    result = _invoke(tmp_path / "logs", "--format", output_format, "--output", target)
    assert result.exit_code == 0 and result.output == ""
    text = target.read_text()
    if output_format == "json":
        assert json.loads(text)["runs"][0]["layers"][0]["dead_units"] == [0, 1, 2]
    else:
        assert "dying_relu" in text


def test_run_filter_and_write_tensorboard(tmp_path):
    _dead_logdir(tmp_path / "a")
    _dead_logdir(tmp_path / "b")
    result = _invoke(tmp_path, "--run", "a/*", "--format", "json", "--write-tensorboard")
    assert result.exit_code == 0
    assert [run["run"] for run in json.loads(result.stdout)["runs"]] == ["a/train"]
    assert any(name.endswith(".relu-doctor") for name in os.listdir(tmp_path / "a" / "train"))
    assert not any(name.endswith(".relu-doctor") for name in os.listdir(tmp_path / "b" / "train"))


def _one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    _one_line_error(_invoke(tmp_path / "missing"), 2, "does not exist")
    _one_line_error(_invoke(tmp_path), 2, "no events.out.tfevents")
    (tmp_path / "events.out.tfevents.1.host").write_text("not an event file\n" * 10)
    _one_line_error(_invoke(tmp_path), 2, "no readable record")
    _one_line_error(_invoke(tmp_path, "--fail-on", "dying"), 2, "unknown kind")
    _one_line_error(_invoke(tmp_path, "--dead-threshold", "50"), 2, "--dead-threshold", "pass 0.5")
    _one_line_error(_invoke(tmp_path, "--run", "x/*"), 2, "matches no run")
    assert _invoke(tmp_path, "--format", "pdf").exit_code == 2


def test_truncated_and_corrupt_files_still_report(tmp_path):
    path = _dead_logdir(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[40] ^= 0xFF  # the length of the first units record, after the version record
    open(path, "wb").write(bytes(data[:-5]))
    result = _invoke(tmp_path)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "ends early at offset" in output
    assert "bad length checksum at offset 40; resumed at offset" in output
    # The damaged record carried the units' metadata; the rest are still read as units.
    assert "run train: dying_relu" in output


def test_report_command_never_imports_tensorflow(tmp_path):
    _dead_logdir(tmp_path)
    code = (
        "import sys\n"
        "from keras_relu_doctor.cli.main import main\n"
        f"try:\n    main(['report', {str(tmp_path)!r}, '--format', 'json'])\n"
        "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "assert not {'tensorflow', 'keras'} & {m.split('.')[0] for m in sys.modules}, 'imported TF'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

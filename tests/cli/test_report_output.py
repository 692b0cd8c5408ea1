"""Where the report goes: odd names, full disks, closed streams, failed renders, read-only runs."""

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
COMMAND = [sys.executable, "-m", "keras_relu_doctor.cli.main", "report"]


def _logdir(folder, layer: str = "dense") -> None:
    with EventWriter(folder) as writer:
        for step in range(3):
            max_abs = np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
            writer.units(f"{layer}/units", np.stack([max_abs > 0, max_abs]), step, METADATA)
            writer.scalar(f"{layer}/grad_norm", 0.1, step)


def _run(*args, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, args)], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120)


def _one_line(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_layer_names_are_never_read_as_markup(tmp_path):
    _logdir(tmp_path / "train", layer="[/bold]")
    _logdir(tmp_path / "other", layer="[red]x[/red][link=http://e]y")
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[/bold]" in done.stdout and "[red]x[/red][link=http://e]y" in done.stdout


@pytest.mark.parametrize("output_format", ["text", "markdown", "html", "json"])
def test_names_that_are_not_utf8_show_as_replacement_characters(tmp_path, output_format):
    folder = os.path.join(os.fsencode(tmp_path), b"run_\xff\xfe")
    _logdir(os.fsdecode(folder))
    done = subprocess.run([*COMMAND, str(tmp_path), "--format", output_format], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("utf-8")  # valid UTF-8
    assert "run_\ufffd\ufffd" in (json.loads(text)["runs"][0]["run"] if output_format == "json" else text)


def test_a_full_disk_or_a_closed_stdout_is_one_line(tmp_path):
    _logdir(tmp_path / "train")
    _one_line(_run(tmp_path, "-o", "/dev/full"), "--output '/dev/full'", "No space left")
    with open("/dev/full", "w") as full:
        _one_line(_run(tmp_path, stdout=full), "standard output", "-o FILE")
    closed = subprocess.run(" ".join([*COMMAND, str(tmp_path)]) + " >&-", shell=True, capture_output=False,
                            stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    _one_line(closed, "standard output")


def test_a_failed_render_leaves_the_old_report_whole(tmp_path, monkeypatch):
    from keras_relu_doctor import render

    _logdir(tmp_path / "logs" / "train")
    target = tmp_path / "report.html"
    assert CliRunner().invoke(main, ["report", str(tmp_path / "logs"), "--format", "html", "-o", str(target)]).exit_code == 0
    before = target.read_text()
    assert "dying_relu" in before

    def broken(report, **options):
        raise RuntimeError("render failed")

    monkeypatch.setitem(render.RENDERERS, "html", broken)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "logs"), "--format", "html", "-o", str(target)])
    assert isinstance(result.exception, RuntimeError)
    assert target.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["logs", "report.html"]  # no temporary file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_write_tensorboard_into_a_read_only_run_writes_nothing(tmp_path):
    _logdir(tmp_path / "a" / "train")
    _logdir(tmp_path / "b" / "train")
    os.chmod(tmp_path / "b" / "train", 0o555)
    try:
        done = _run(tmp_path, "--write-tensorboard")
        _one_line(done, "not writable", "nothing was written")
        assert len(os.listdir(tmp_path / "a" / "train")) == 1
    finally:
        os.chmod(tmp_path / "b" / "train", 0o755)

"""``relu-doctor replay --backend``: the same tiny grid on TensorFlow, JAX and PyTorch gives the same verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from keras_relu_doctor.cli.main import main
from keras_relu_doctor.replay import backends
from keras_relu_doctor.replay.runner import MARKER_FILE
from keras_relu_doctor.replay.train import RUN_FILE

# Two runs whose fate does not hang on the seed: uniform(-1, 0) weights on inputs in (-1, 0)
# keep the 1-layer net alive and kill layers 2 and 3 of the 3-layer net at the first step.
TINY = ["--only", "relu-negative-d?", "--seeds", "1", "--epochs", "2", "--samples", "400"]
COMMAND = [sys.executable, "-m", "keras_relu_doctor.cli.main", "replay"]
# In-process on TensorFlow and PyTorch; JAX in two worker processes (the pool's path).
JOBS = {"tensorflow": "1", "jax": "2", "torch": "1"}


def _replay(*args: str):
    return CliRunner().invoke(main, ["replay", *args])


def _verdicts(summary: dict) -> dict[str, object]:
    """What must not depend on the backend: per setting, the deaths, the gradients and the verdict; the claims."""
    return {
        "settings": [(row["setting"], row["died"], row["gradients"], row["verdict"]) for row in summary["settings"]],
        "claims": [(claim["claim"], claim["head"], claim["verdict"]) for claim in summary["claims"]],
    }


@pytest.mark.slow
def test_tiny_replay_gives_the_same_verdicts_on_every_backend(tmp_path):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("KERAS_BACKEND", None)  # --backend alone decides
    replays = {
        backend: subprocess.Popen([*COMMAND, str(tmp_path / backend), *TINY, "--backend", backend, "--jobs", jobs],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        for backend, jobs in JOBS.items()
    }  # fmt: skip
    summaries = {}
    for backend, process in replays.items():
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, (backend, stderr)
        assert f"Trained on Keras backend {backend}." in stdout
        logdir = tmp_path / backend
        summaries[backend] = json.loads((logdir / "summary.json").read_text())
        assert summaries[backend]["options"]["backend"] == backend
        assert (logdir / "summary.md").read_text().startswith(f"Trained on Keras backend `{backend}`.")
        assert json.loads((logdir / "relu-negative-d3-s0" / RUN_FILE).read_text())["backend"] == backend
    expected = {
        "settings": [("relu-negative-d1", "0/1", "ok", "healthy"), ("relu-negative-d3", "1/1", "zero", "dying_relu")],
        "claims": [(claim, "linear", "partly" if claim == 4 else "not tested") for claim in range(1, 7)],
    }
    assert _verdicts(summaries["tensorflow"]) == expected
    assert _verdicts(summaries["jax"]) == expected
    assert _verdicts(summaries["torch"]) == expected
    # Each backend draws its own initial weights: the losses are each its own.
    losses = {backend: summary["settings"][0]["val_loss"] for backend, summary in summaries.items()}
    assert len(set(losses.values())) == 3, losses


@pytest.mark.parametrize(
    ("args", "environment", "message"),
    [
        (["--backend", "numpy"], {}, "unknown backend 'numpy': use one of tensorflow, jax, torch"),
        ([], {"KERAS_BACKEND": "mlx"}, "unknown backend 'mlx' (KERAS_BACKEND=mlx): use one of tensorflow, jax, torch"),
    ],
)
def test_a_bad_backend_is_one_line_and_exit_2(tmp_path, monkeypatch, args, environment, message):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    outcome = _replay(str(tmp_path / "new"), *TINY, *args)
    assert outcome.exit_code == 2
    assert outcome.output == f"relu-doctor replay: {message}\n"
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("backend", "missing", "extra"), [("jax", "jaxlib", "jax"), ("torch", "torch", "torch-cpu")])
def test_a_backend_not_installed_names_the_extra_to_install(tmp_path, monkeypatch, backend, missing, extra):
    found = backends.importlib.util.find_spec
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None if name == missing else found(name))
    outcome = _replay(str(tmp_path / "new"), *TINY, "--backend", backend)
    assert outcome.exit_code == 2
    assert outcome.output == (
        f"relu-doctor replay: the {backend} backend needs {missing}, which is not installed:"
        f" pip install 'keras-relu-doctor[{extra}]'\n"
    )


@pytest.mark.parametrize(("marked", "backend"), [({"backend": "jax"}, "torch"), ({}, "jax")])
def test_a_logdir_of_another_backend_is_refused_and_kept(tmp_path, marked, backend):
    """A replay's runs are one backend's: resuming on another is refused (a replay without the key ran on TensorFlow)."""
    (tmp_path / MARKER_FILE).write_text(json.dumps({"schema": 1, "experiment": "dying", **marked}))
    before = sorted(path.name for path in tmp_path.iterdir())
    outcome = _replay(str(tmp_path), *TINY, "--backend", backend)
    holder = marked.get("backend", "tensorflow")
    assert outcome.exit_code == 2
    assert outcome.output == (
        f"relu-doctor replay: LOGDIR {str(tmp_path)!r} holds runs trained on {holder}, not {backend}:"
        f" pass another LOGDIR (or --backend {holder} to resume it)\n"
    )
    assert json.loads((tmp_path / MARKER_FILE).read_text()).get("backend") == marked.get("backend")
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != "replay.lock") == before


def test_runs_of_this_backend_are_not_mistaken_for_other_settings(tmp_path):
    """run.json's backend is a record, not a setting: the resume check compares the spec alone."""
    from dataclasses import asdict

    from keras_relu_doctor.replay.grid import build_grid
    from keras_relu_doctor.replay.runner import prepare_logdir

    grid = build_grid("quick", only="relu-negative-d1", seeds=1, epochs=2, samples=400)
    (tmp_path / MARKER_FILE).write_text(json.dumps({"schema": 1, "experiment": "dying", "backend": "jax"}))
    run_dir = tmp_path / grid[0].name
    run_dir.mkdir()
    (run_dir / RUN_FILE).write_text(json.dumps({"schema": 1, "backend": "jax", **asdict(grid[0])}))
    assert prepare_logdir(tmp_path, grid, {"backend": "jax"}) == {}  # no result.json: to be trained again
    assert json.loads((tmp_path / MARKER_FILE).read_text())["backend"] == "jax"


def test_the_default_is_keras_backend_else_tensorflow(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert backends.resolve_backend(None) == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backends.resolve_backend(None) == "jax"
    assert backends.resolve_backend("torch") == "torch"


def test_a_worker_of_another_backend_than_this_process_keras_is_refused(monkeypatch):
    pytest.importorskip("keras")
    import keras

    other = next(name for name in backends.BACKENDS if name != keras.config.backend())
    with pytest.raises(backends.BadOption, match=f"Keras already runs on {keras.config.backend()} in this process"):
        backends.configure_worker(other)

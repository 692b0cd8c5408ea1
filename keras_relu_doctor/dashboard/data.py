"""What the TensorBoard dashboard shows, read from the event files with our own reader.

TensorBoard keeps 10 samples per tag of a third-party plugin (100 under its
Rust data server) unless told otherwise, so the dashboard does not read our
records through it: it reads each run's files with ``keras_relu_doctor.events``
and diagnoses them with the same ``report_run`` as ``relu-doctor report``, so the
two never disagree. Each run is read when first asked for and kept until its
event files change (size or modification time).

>>> data = DashboardData([("", "runs/experiment")])  # doctest: +SKIP
>>> data.runs()[0]["verdict"]  # doctest: +SKIP
'dying_relu'
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from typing import Any

from keras_relu_doctor.events.logdir import find_runs
from keras_relu_doctor.render.common import LAYER_COLUMNS, finding_layers, layer_row, noteworthy, runs_by_severity
from keras_relu_doctor.report import LayerSummary, RunReport, json_ready, report_run
from keras_relu_doctor.tags import facts_layers

LAYER_SERIES = ("steps", "dead_fraction_by_step", "grad_norm_by_step", "output_grad_norm_by_step", "liveness")


class UnknownName(KeyError):
    """A run or layer the logdir does not hold."""


class NoLogdir(LookupError):
    """TensorBoard was started without a folder to read (a gRPC data provider, say)."""


NO_LOGDIR = (
    "this TensorBoard has no logdir on disk (--logdir or --logdir_spec): the ReLU Doctor tab reads the event"
    " files itself, so start TensorBoard with --logdir LOGDIR"
)


def parse_logdir_spec(spec: str) -> list[tuple[str, str]]:
    """``name:path,name:path`` (TensorBoard's ``--logdir_spec``) as (name, path) roots; a bare path has no name.

    >>> parse_logdir_spec("dies:logs/a,fixed:logs/b"), parse_logdir_spec("logs")
    ([('dies', 'logs/a'), ('fixed', 'logs/b')], [('', 'logs')])
    """
    roots = []
    for part in filter(None, spec.split(",")):
        name, colon, path = part.partition(":")
        roots.append((name, path) if colon and not (len(name) == 1 and path.startswith("\\")) else ("", part))
    return roots


def _joined(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return prefix if path == "." else f"{prefix}/{path}"


class DashboardData:
    """The runs under ``roots`` ((name, path) pairs, as TensorBoard's ``--logdir`` or ``--logdir_spec``)."""

    def __init__(self, roots: list[tuple[str, str]]) -> None:
        self._roots = roots
        self._cache: dict[str, tuple[tuple, RunReport, dict]] = {}
        self._lock = threading.Lock()

    def _locations(self) -> dict[str, tuple[str, str, list[str]]]:
        """TensorBoard's run name -> (root folder, path under it, event file names)."""
        if not self._roots:
            raise NoLogdir(NO_LOGDIR)
        found = {}
        for prefix, root in self._roots:
            if not os.path.isdir(root):
                continue
            for path, files in find_runs(root):
                found[_joined(prefix, path)] = (root, path, files)
        return found

    def _read(self, name: str, location: tuple[str, str, list[str]]) -> tuple[RunReport, dict]:
        from keras_relu_doctor.events.run import read_run

        root, path, files = location
        folder = os.path.join(root, path)
        signature = tuple((file, *_stat(os.path.join(folder, file))) for file in files)
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]
        run = read_run(folder, files, name)
        report = report_run(run)
        facts = run.model_facts or {}
        with self._lock:
            self._cache[name] = (signature, report, facts)
        return report, facts

    def _run(self, name: str) -> tuple[RunReport, dict]:
        location = self._locations().get(name)
        if location is None:
            raise UnknownName(f"no run {name!r}")
        return self._read(name, location)

    def runs(self) -> list[dict[str, Any]]:
        """Every run with its verdict and problems, problems first."""
        reports = [self._read(name, location)[0] for name, location in self._locations().items()]
        return [
            {
                "run": report.run,
                "verdict": report.verdict,
                "problems": list(report.problems),
                "layers_named": sorted(finding_layers(report, problems_only=True)),
                "layers": len(report.layers),
            }
            for report in runs_by_severity(tuple(reports))
        ]

    def run(self, name: str) -> dict[str, Any]:
        """One run: findings, fixes, notes, model facts, and its layers without their series (noteworthy first)."""
        report, facts = self._run(name)
        document = asdict(report)
        named = finding_layers(report)
        layer_facts = facts_layers(facts)
        layers = []
        for layer in report.layers:
            row = {key: value for key, value in asdict(layer).items() if key not in LAYER_SERIES}
            row["noteworthy"] = noteworthy(layer, named)
            row["class"] = str(layer_facts.get(layer.name, {}).get("class", ""))
            row["cells"] = dict(zip(LAYER_COLUMNS, layer_row(layer)))  # as the text report writes them
            layers.append(row)
        layers.sort(key=lambda row: not row["noteworthy"])
        document["layers"] = layers
        document["facts"] = {key: facts[key] for key in ("model", "optimizer", "probe", "loss") if key in facts}
        return json_ready(document)

    def layer(self, run: str, name: str) -> dict[str, Any]:
        """One layer's curves and heatmap: dead share, gradient norm (the output's for a layer without weights)."""
        report, _ = self._run(run)
        layer = next((layer for layer in report.layers if layer.name == name), None)
        if layer is None:
            raise UnknownName(f"no layer {name!r} in run {run!r}")
        return json_ready(_layer_document(layer))


def _layer_document(layer: LayerSummary) -> dict[str, Any]:
    weightless = layer.grad_status == "no_weights"
    return {
        "name": layer.name,
        "units": layer.units,
        "dead_units": list(layer.dead_units),
        "near_dead_units": list(layer.near_dead_units),
        "steps": list(layer.steps),
        "dead_fraction": list(layer.dead_fraction_by_step),
        "gradient_of": "output" if weightless else "weights",
        "grad_norm": list(layer.output_grad_norm_by_step if weightless else layer.grad_norm_by_step),
        "grad_status": layer.grad_status,
        "liveness": asdict(layer.liveness) if layer.liveness is not None else None,
    }


def _stat(path: str) -> tuple[int, int]:
    try:
        status = os.stat(path)
    except OSError:
        return (-1, -1)
    return (status.st_size, status.st_mtime_ns)

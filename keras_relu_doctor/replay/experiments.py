"""The replay's experiments, each a grid, a trainer, a result type and its tables. No TensorFlow.

``relu-doctor replay --experiment NAME`` picks one:

- ``dying``: the synthetic (-1, 0) experiment of "Is ReLU Dead?" (the default);
- ``deep-stack``: stacked conv blocks, sigmoid and ReLU, BatchNorm, shortcuts,
  a large initializer and clipping (the LeNet experiments on vanishing and
  exploding gradients);
- ``spikes``: a CNN with max or average pooling at a high learning rate, logged every
  few batches: loss spikes that leave dead units, and the remedies (the maxpool/avgpool
  story of "由dead relu引发的思考").

>>> sorted(EXPERIMENTS)
['deep-stack', 'dying', 'spikes']
>>> EXPERIMENTS["deep-stack"].trainer
'keras_relu_doctor.replay.deep_stack.train:train_stack_run'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_relu_doctor.errors import BadOption


@dataclass(frozen=True)
class Experiment:
    """What the runner and the CLI need of one experiment.

    ``build_grid(preset, only=, seeds=, epochs=, samples=, **extra)`` gives the
    runs; ``trainer`` names the function that trains one (``module:function``,
    imported by each worker); ``result_type`` reads ``result.json`` back
    (``from_dict``); ``attach_report(results, logdir)`` adds the report's
    reading; ``build_summary(results, options)`` gives an object with
    ``tables()``, ``to_dict()`` and ``to_markdown()``.
    """

    name: str
    title: str
    presets: tuple[str, ...]
    build_grid: Callable[..., tuple[Any, ...]]
    trainer: str
    result_type: type
    attach_report: Callable[[Sequence[Any], Path], tuple[Any, ...]]
    build_summary: Callable[[Sequence[Any], dict[str, Any]], Any]
    options: tuple[str, ...] = ()  # options beyond the common ones (``target``)

    def train(self, spec: Any, logdir: str) -> Any:
        module, function = self.trainer.split(":")
        return getattr(importlib.import_module(module), function)(spec, logdir)


def _dying() -> Experiment:
    from keras_relu_doctor.replay.grid import PRESETS, build_grid
    from keras_relu_doctor.replay.results import RunResult
    from keras_relu_doctor.replay.summary import attach_report, build_summary

    return Experiment("dying", "Is ReLU Dead? (the synthetic (-1, 0) experiment)", tuple(PRESETS), build_grid,
                      "keras_relu_doctor.replay.train:train_run", RunResult, attach_report, build_summary,
                      options=("target",))  # fmt: skip


def _deep_stack() -> Experiment:
    from keras_relu_doctor.replay.deep_stack.grid import STACK_PRESETS, build_stack_grid
    from keras_relu_doctor.replay.deep_stack.results import StackResult
    from keras_relu_doctor.replay.deep_stack.summary import attach_stack_report, build_stack_summary

    return Experiment("deep-stack", "Deep stacks (vanishing and exploding gradients)", tuple(STACK_PRESETS),
                      build_stack_grid, "keras_relu_doctor.replay.deep_stack.train:train_stack_run", StackResult,
                      attach_stack_report, build_stack_summary)  # fmt: skip


def _spikes() -> Experiment:
    from keras_relu_doctor.replay.spikes.grid import SPIKE_PRESETS, build_spike_grid
    from keras_relu_doctor.replay.spikes.results import SpikeResult
    from keras_relu_doctor.replay.spikes.summary import attach_spike_report, build_spike_summary

    return Experiment("spikes", "Loss spikes that leave dead units (max against average pooling)",
                      tuple(SPIKE_PRESETS), build_spike_grid, "keras_relu_doctor.replay.spikes.train:train_spike_run",
                      SpikeResult, attach_spike_report, build_spike_summary)  # fmt: skip


EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment for experiment in (_dying(), _deep_stack(), _spikes())
}
DEFAULT_EXPERIMENT = "dying"


def experiment_named(name: str) -> Experiment:
    """The experiment called ``name``; a one-line error listing the others."""
    if name not in EXPERIMENTS:
        raise BadOption(f"unknown experiment {name!r}: use one of {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]

"""The probe: what the callback measures on the probe batch, and how, on every Keras backend.

The backend-neutral modules: :mod:`.layers` chooses the layers and names
their activations, :mod:`.recording` observes a forward pass,
:mod:`.forward` runs a recorded stateless pass, :mod:`.layout` says which
tag each measured value has and writes them, :mod:`.statistics` computes
the values from per-layer reductions (numpy), :mod:`.facts` describes the
model once per ``fit``. One module per backend compiles the measurement and
takes the gradients: :mod:`.tf_probe` (one ``tf.function``, its statistics
in the graph), :mod:`.jax_probe` (``jax.jit`` and ``jax.value_and_grad``),
:mod:`.torch_probe` (autograd). :func:`build_probe` picks the active
backend's; only that backend's framework is imported. :mod:`.distribute`
says how the TensorFlow probe runs under a ``tf.distribute`` strategy.

>>> from keras_relu_doctor import probe
>>> probe.MODE_TRAINING, probe.MODE_INFERENCE
('training', 'inference')
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from keras_relu_doctor.probe.facts import current_learning_rate, model_facts
from keras_relu_doctor.probe.forward import probe_size_for
from keras_relu_doctor.probe.layers import LayerEntry, describe_activation, walk_layers
from keras_relu_doctor.probe.layout import (
    DEFAULT_BUCKETS,
    MODE_INFERENCE,
    MODE_TRAINING,
    PROBE_MODES,
    Probe,
    ProbeLayout,
    ProbeSettings,
    write_probe,
)

# Backend name -> (module, probe class).
PROBES = {
    "tensorflow": ("keras_relu_doctor.probe.tf_probe", "TensorFlowProbe"),
    "jax": ("keras_relu_doctor.probe.jax_probe", "JaxProbe"),
    "torch": ("keras_relu_doctor.probe.torch_probe", "TorchProbe"),
}
SUPPORTED_BACKENDS = tuple(PROBES)
# TensorFlow-only helpers, imported on first use.
_TENSORFLOW_ONLY = (
    "build_probe_function", "histogram_tensors", "snapshot_weights", "to_numpy", "unit_liveness",
    "without_graph_rewrites", "default_replica_context", "writes_summaries",
)


def build_probe(
    backend: str,
    model: Any,
    entries: list[LayerEntry],
    loss_fn: Callable[..., Any] | None,
    settings: ProbeSettings,
) -> Probe:
    """The probe of ``backend`` (``keras.backend.backend()``) for ``model``; call ``build`` before measuring."""
    module, name = PROBES[backend]
    return getattr(importlib.import_module(module), name)(model, entries, loss_fn, settings)


def __getattr__(name: str) -> Any:
    if name in _TENSORFLOW_ONLY:
        return getattr(importlib.import_module("keras_relu_doctor.probe.tf_probe"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_BUCKETS",
    "LayerEntry",
    "MODE_INFERENCE",
    "MODE_TRAINING",
    "PROBES",
    "PROBE_MODES",
    "Probe",
    "ProbeLayout",
    "ProbeSettings",
    "SUPPORTED_BACKENDS",
    "build_probe",
    "current_learning_rate",
    "default_replica_context",
    "describe_activation",
    "model_facts",
    "probe_size_for",
    "walk_layers",
    "write_probe",
    *_TENSORFLOW_ONLY,
]

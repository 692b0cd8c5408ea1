"""The probe: what the callback measures on the probe batch, and how.

One module per job: :mod:`.layers` chooses the layers and names their
activations, :mod:`.recording` observes a traced forward pass,
:mod:`.measure` builds the compiled measurement and writes its values,
:mod:`.facts` describes the model once per ``fit``, :mod:`.distribute` says
how it runs under a ``tf.distribute`` strategy. All of it runs on the
TensorFlow backend.

>>> from keras_relu_doctor import probe
>>> probe.MODE_TRAINING, probe.MODE_INFERENCE
('training', 'inference')
"""

from __future__ import annotations

from keras_relu_doctor.probe.distribute import default_replica_context, writes_summaries
from keras_relu_doctor.probe.facts import current_learning_rate, model_facts
from keras_relu_doctor.probe.layers import LayerEntry, describe_activation, walk_layers
from keras_relu_doctor.probe.measure import (
    DEFAULT_BUCKETS,
    MODE_INFERENCE,
    MODE_TRAINING,
    PROBE_MODES,
    ProbeLayout,
    ProbeSettings,
    build_probe_function,
    histogram_tensors,
    probe_size_for,
    snapshot_weights,
    to_numpy,
    unit_liveness,
    without_graph_rewrites,
    write_probe,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "LayerEntry",
    "MODE_INFERENCE",
    "MODE_TRAINING",
    "PROBE_MODES",
    "ProbeLayout",
    "ProbeSettings",
    "build_probe_function",
    "current_learning_rate",
    "default_replica_context",
    "describe_activation",
    "histogram_tensors",
    "model_facts",
    "probe_size_for",
    "snapshot_weights",
    "to_numpy",
    "unit_liveness",
    "walk_layers",
    "without_graph_rewrites",
    "write_probe",
    "writes_summaries",
]

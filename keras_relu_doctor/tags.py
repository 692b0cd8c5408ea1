"""The one contract between the writer (the callback) and the reader (the report).

Every tag string, plugin name and per-unit record layout lives here, and both
sides import it, as TensorBoard's ``plugins/histogram/metadata.py`` does for
histograms. Nothing here imports TensorFlow.

Tag scheme (``<layer>`` is the layer's path in the model, nested models joined
with ``/``, e.g. ``encoder/dense_1``):

========================================  =========  =========================================
tag                                       kind       what
========================================  =========  =========================================
``<layer>/activations``                   histogram  layer output on the probe batch
``<layer>/preactivations``                histogram  input of the layer's activation
``<layer>/gradients/<weight>``            histogram  d loss / d weight (``kernel``, ``bias``...)
``<layer>/gradients/output``              histogram  d loss / d layer output
``<layer>/unit_activity``                 histogram  per-unit active fraction, across units
``<layer>/units``                         tensor     per-unit record, rows ``UNIT_ROWS``
``<layer>/dead_fraction``                 scalar     share of units exactly 0 on every sample
``<layer>/near_dead_fraction``            scalar     share of units with 0 < max|out| <= tol
``<layer>/zero_fraction``                 scalar     share of values exactly 0 (sampled)
``<layer>/grad_norm``                     scalar     L2 norm of d loss / d trainable weights
``<layer>/output_grad_norm``              scalar     L2 norm of d loss / d layer output
``<layer>/weight_norm``                   scalar     L2 norm of the trainable weights
``<layer>/update_ratio``                  scalar     ||w - w_prev|| / ||w|| since last log (sampled)
``<layer>/nonfinite_activations``         scalar     samples x units with NaN/Inf output
``<layer>/nonfinite_gradients``           scalar     NaN/Inf in its gradients (estimate)
``relu_doctor/probe_loss``                scalar     compiled loss on the probe batch
``relu_doctor/learning_rate``             scalar     the optimizer's learning rate at each log
``relu_doctor/model_facts``               tensor     JSON model facts, once per ``fit``
========================================  =========  =========================================

Steps (schema 2): the step of a log is the number of updates done, in the
``step_unit`` of the run. Step 0 is the baseline, measured before the first
update; with ``update_freq="epoch"`` step N is logged after N epochs (Keras'
own ``epoch_loss`` of epoch index N-1 belongs to it); with batches, step N
after N optimizer updates. A second ``fit`` continues the count.

Example:

>>> tag("dense_1", DEAD_FRACTION)
'dense_1/dead_fraction'
>>> parse_tag("encoder/dense_1/gradients/kernel")
('encoder/dense_1', 'gradients/kernel')
>>> parse_tag("epoch_loss") is None
True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping

SCHEMA_VERSION = 2
# Schema 2: a baseline at step 0 before any update, epoch steps count epochs
# done, model facts, probe mode. Schema 1 logged epoch index e at step e.
FIRST_SCHEMA_WITH_BASELINE = 2

# Plugin names. Histograms and scalars use TensorBoard's own plugins so its
# dashboards show them; the per-unit record uses ours (TensorBoard ignores it).
HISTOGRAMS_PLUGIN = "histograms"
SCALARS_PLUGIN = "scalars"
TEXT_PLUGIN = "text"
PLUGIN_NAME = "relu_doctor"

# Histogram quantities.
ACTIVATIONS = "activations"
PREACTIVATIONS = "preactivations"
GRADIENTS = "gradients"
OUTPUT_GRADIENT = "gradients/output"
UNIT_ACTIVITY = "unit_activity"

# Buckets per histogram the callback writes by default: tf.summary.histogram's own.
DEFAULT_BUCKETS = 30

# Per-unit tensor record: float32 array of shape [len(rows), units], the rows
# named in its metadata. ``output_range`` (max - min of the unit's output over the
# probe batch; 0 for a unit that carries no signal) came with schema 2; readers
# need only the required rows.
UNITS = "units"
REQUIRED_UNIT_ROWS = ("active_fraction", "max_abs_output")
UNIT_ROWS = (*REQUIRED_UNIT_ROWS, "output_range")

# Scalar quantities.
DEAD_FRACTION = "dead_fraction"
NEAR_DEAD_FRACTION = "near_dead_fraction"
ZERO_FRACTION = "zero_fraction"
GRAD_NORM = "grad_norm"
OUTPUT_GRAD_NORM = "output_grad_norm"
WEIGHT_NORM = "weight_norm"
UPDATE_RATIO = "update_ratio"
NONFINITE_ACTIVATIONS = "nonfinite_activations"
NONFINITE_GRADIENTS = "nonfinite_gradients"

SCALAR_QUANTITIES = (
    DEAD_FRACTION,
    NEAR_DEAD_FRACTION,
    ZERO_FRACTION,
    GRAD_NORM,
    OUTPUT_GRAD_NORM,
    WEIGHT_NORM,
    UPDATE_RATIO,
    NONFINITE_ACTIVATIONS,
    NONFINITE_GRADIENTS,
)
HISTOGRAM_QUANTITIES = (ACTIVATIONS, PREACTIVATIONS, OUTPUT_GRADIENT, UNIT_ACTIVITY)

# Run-level tags (not per layer).
RUN_PREFIX = "relu_doctor"
PROBE_LOSS = f"{RUN_PREFIX}/probe_loss"
LEARNING_RATE = f"{RUN_PREFIX}/learning_rate"
MODEL_FACTS = f"{RUN_PREFIX}/model_facts"
# Plugin content that marks the model facts record (the value is the JSON text).
MODEL_FACTS_CONTENT = b'{"kind": "model_facts", "schema": 2}'

REPORT_TEXT = f"{RUN_PREFIX}/report"

# Scalars Keras' own TensorBoard callback writes (read for loss-curve rules).
KERAS_EPOCH_LOSS = "epoch_loss"
KERAS_BATCH_LOSS = "batch_loss"

# Where events go, as Keras' TensorBoard callback does: log_dir/train.
TRAIN_SUBDIR = "train"

# Step units recorded in the per-unit metadata.
STEP_EPOCH = "epoch"
STEP_BATCH = "batch"

# Why a layer is not measured, as the model facts record it. The quiet ones
# need no attention (the report counts them); the others hide a layer from view.
REASON_SHAPE_ONLY = "reshapes, routes or drops values only"
REASON_MERGE = "merges measured inputs (see the model facts)"
REASON_THROUGH_SUBLAYERS = "measured through its sublayers"
REASON_NOT_REACHED = "not called when the model runs on the probe batch"
REASON_NOT_FLOAT = "its output is not a floating-point tensor"
REASON_FUSED_ATTENTION = "attention runs in a fused kernel (flash attention), so its softmax is never materialised"
QUIET_NOT_MEASURED_REASONS = (REASON_SHAPE_ONLY, REASON_MERGE, REASON_THROUGH_SUBLAYERS)

# Activations whose units can die: exactly zero output and zero gradient for
# every input below the threshold. LeakyReLU, PReLU and ELU keep a slope there,
# so their units can only be near-dead.
RECTIFIERS = ("relu", "relu6")

# How the probe ran the model: normalisation on batch statistics as in
# training (Dropout off), or the deployed network (``training=False``).
PROBE_TRAINING = "training"
PROBE_INFERENCE = "inference"


@dataclass(frozen=True)
class UnitsMetadata:
    """What the reader needs to interpret a ``<layer>/units`` record.

    >>> UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu").to_bytes()[:12]
    b'{"schema": 2'
    """

    tolerance: float
    step_unit: str
    activation: str = ""
    layer_class: str = ""
    schema: int = SCHEMA_VERSION
    rows: tuple[str, ...] = UNIT_ROWS
    probe_mode: str = ""
    activation_source: str = ""

    def to_bytes(self) -> bytes:
        fields = asdict(self)
        fields = {"schema": fields.pop("schema"), **fields}
        fields["rows"] = list(self.rows)
        return json.dumps(fields).encode("utf-8")

    @classmethod
    def from_bytes(cls, content: bytes) -> UnitsMetadata:
        """Parse plugin content; unknown keys from newer writers are ignored."""
        raw = json.loads(content.decode("utf-8"))
        if not isinstance(raw, dict):
            raise ValueError(f"per-unit metadata is JSON {type(raw).__name__}, not an object")
        return cls(
            tolerance=float(raw.get("tolerance", 1e-6)),
            step_unit=str(raw.get("step_unit", STEP_EPOCH)),
            activation=str(raw.get("activation", "")),
            layer_class=str(raw.get("layer_class", "")),
            # Records without a schema key predate schema 2.
            schema=int(raw.get("schema", 1)),
            rows=tuple(raw.get("rows", UNIT_ROWS)),
            probe_mode=str(raw.get("probe_mode", "")),
            activation_source=str(raw.get("activation_source", "")),
        )


def encode_facts(facts: dict) -> bytes:
    """The model facts as the UTF-8 JSON text stored in the ``MODEL_FACTS`` tensor.

    >>> decode_facts(encode_facts({"layers": []}))["schema"]
    2
    """
    return json.dumps({"schema": SCHEMA_VERSION, **facts}, sort_keys=False).encode("utf-8")


def facts_layers(facts: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The ``layers`` of a model facts document by path, in model order; empty without facts.

    >>> list(facts_layers({"layers": [{"path": "dense"}, "not a layer"]}))
    ['dense']
    """
    layers = (facts or {}).get("layers", ())
    return {str(layer.get("path")): layer for layer in layers if isinstance(layer, Mapping)}


def decode_facts(content: bytes) -> dict:
    """Parse a ``MODEL_FACTS`` value; ``ValueError`` when it is not a JSON object."""
    raw = json.loads(content.decode("utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"model facts are JSON {type(raw).__name__}, not an object")
    return raw


def tag(layer: str, quantity: str) -> str:
    """The tag of one quantity of one layer.

    >>> tag("conv2d", GRADIENTS + "/kernel")
    'conv2d/gradients/kernel'
    """
    return f"{layer}/{quantity}"


def gradient_tag(layer: str, weight: str) -> str:
    """The histogram tag of d loss / d ``weight`` of ``layer``.

    >>> gradient_tag("dense", "kernel")
    'dense/gradients/kernel'
    """
    return tag(layer, f"{GRADIENTS}/{weight}")


def parse_tag(full_tag: str) -> tuple[str, str] | None:
    """Split one of our per-layer tags into ``(layer, quantity)``; None otherwise.

    Layer names may contain ``/`` (nested models), so the quantity is matched
    from the end.

    >>> parse_tag("dense/units")
    ('dense', 'units')
    >>> parse_tag("model/dense/gradients/bias")
    ('model/dense', 'gradients/bias')
    """
    if full_tag.startswith(RUN_PREFIX + "/"):
        return None
    head, sep, last = full_tag.rpartition("/")
    if not sep or not head:
        return None
    if last in SCALAR_QUANTITIES or last in (ACTIVATIONS, PREACTIVATIONS, UNIT_ACTIVITY, UNITS):
        return head, last
    layer, sep, middle = head.rpartition("/")
    if sep and layer and middle == GRADIENTS:
        return layer, f"{GRADIENTS}/{last}"
    return None

"""What the callback records once per ``fit`` about the model: the model facts.

The facts are a JSON document (:data:`keras_relu_doctor.tags.MODEL_FACTS`)
that the diagnosis reads so that fixes never recommend what the model already
has: per layer its class, activation and parameters, initializers, whether a
normalisation layer feeds its activation, and what it was computed from; the
merges (residual shortcuts); the output heads; a layer's ``inputs`` name the
layers it was computed from, ``<input>`` for the model's inputs; the optimizer, learning rate or
schedule and clipping; the loss; how the probe measured.

Example (inside the callback)::

    facts = model_facts(model, entries, layout, probe=probe_facts)
    writer.summaries(step, [(tags.MODEL_FACTS, metadata, tags.facts_tensor(facts))])
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_relu_doctor.probe.layers import (
    MERGE_LAYER_CLASSES,
    NORMALIZATION_MARKERS,
    REASON_SHAPE_ONLY,
    LayerEntry,
)
from keras_relu_doctor.probe.layout import ProbeLayout

# Layer attributes that hold a sublayer whose initializers count as the layer's.
_INNER = ("cell", "forward_layer", "layer")


def _serialized(obj: Any) -> dict[str, Any]:
    """An initializer's or schedule's class and config.

    From ``get_config``: ``keras.saving.serialize_keras_object`` would import
    TensorFlow wherever it is installed, also on the JAX and PyTorch backends.
    """
    try:
        config = obj.get_config()
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        return {"class": type(obj).__name__}
    return {"class": type(obj).__name__, "config": _plain(config if isinstance(config, dict) else {})}


def _plain(value: Any) -> Any:
    """JSON-ready copy of a Keras config (numpy scalars to Python, objects to their names)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__


def initializers(layer: keras.layers.Layer) -> dict[str, dict[str, Any]]:
    """The layer's initializers by argument name (``kernel_initializer``...), inner cells included.

    >>> initializers(keras.layers.Dense(2, kernel_initializer="he_normal"))["kernel_initializer"]["class"]
    'HeNormal'
    """
    found: dict[str, dict[str, Any]] = {}
    sources = [layer] + [getattr(layer, name) for name in _INNER if isinstance(getattr(layer, name, None), keras.layers.Layer)]
    sources += [getattr(source, "cell") for source in sources[1:] if isinstance(getattr(source, "cell", None), keras.layers.Layer)]
    for source in sources:
        for name, value in vars(source).items():
            if name.endswith("_initializer") and isinstance(value, keras.initializers.Initializer):
                found.setdefault(name.lstrip("_"), _serialized(value))
    return found


def _feeds_through_shape_only(path: str, layout: ProbeLayout, kinds: dict[str, LayerEntry]) -> list[str]:
    """The producers of ``path``, looking through layers that only reshape or drop values."""
    producers, seen = list(layout.inputs.get(path, [])), set()
    found: list[str] = []
    while producers:
        producer = producers.pop()
        if producer in seen:
            continue
        seen.add(producer)
        entry = kinds.get(producer)
        if entry is not None and entry.reason == REASON_SHAPE_ONLY:
            producers.extend(layout.inputs.get(producer, []))
        else:
            found.append(producer)
    return found


def _normalized_before_activation(entry: LayerEntry, layout: ProbeLayout, kinds: dict[str, LayerEntry]) -> bool | None:
    """True when every input of an activation layer comes from a normalisation layer.

    A fused activation (``Dense(..., activation="relu")``) has none before it;
    a layer without activation answers None.
    """
    if entry.is_activation_layer:
        producers = _feeds_through_shape_only(entry.path, layout, kinds)
        return bool(producers) and all(
            producer in kinds and any(marker in kinds[producer].layer_class for marker in NORMALIZATION_MARKERS)
            for producer in producers
        )
    if entry.has_fused_activation:
        return False
    return None


def _layer_facts(entry: LayerEntry, layout: ProbeLayout, kinds: dict[str, LayerEntry]) -> dict[str, Any]:
    measured = entry.measured and entry.path in layout.reached
    return {
        "path": entry.path,
        "class": entry.layer_class,
        "measured": measured,
        "reason": "" if measured else layout.not_measured.get(entry.path, entry.reason),
        "activation": layout.metadata[entry.path].activation if entry.path in layout.metadata else entry.activation.name,
        "activation_params": dict(entry.activation.params),
        "activation_source": (
            layout.metadata[entry.path].activation_source if entry.path in layout.metadata else entry.activation.source
        ),
        "initializers": initializers(entry.layer),
        "normalized_before_activation": _normalized_before_activation(entry, layout, kinds),
        "inputs": list(layout.inputs.get(entry.path, [])),
        "trainable": bool(entry.layer.trainable),
    }


def _optimizer_facts(optimizer: Any) -> dict[str, Any] | None:
    if optimizer is None:
        return None
    inner = getattr(optimizer, "inner_optimizer", None)  # LossScaleOptimizer (mixed precision)
    base = inner if inner is not None else optimizer
    schedule = getattr(base, "_learning_rate", None)
    is_schedule = isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    return {
        "class": type(base).__name__,
        "loss_scaling": inner is not None,
        "learning_rate": current_learning_rate(optimizer),
        "learning_rate_schedule": _serialized(schedule) if is_schedule else None,
        "clipnorm": _plain(getattr(base, "clipnorm", None)),
        "clipvalue": _plain(getattr(base, "clipvalue", None)),
        "global_clipnorm": _plain(getattr(base, "global_clipnorm", None)),
        "weight_decay": _plain(getattr(base, "weight_decay", None)),
    }


def backend_version() -> str:
    """The version of the framework Keras runs on (TensorFlow, JAX or PyTorch)."""
    import importlib

    return str(getattr(importlib.import_module(keras.backend.backend()), "__version__", ""))


def current_learning_rate(optimizer: Any) -> float | None:
    """The learning rate the next update uses (a schedule's current value); None if unknown."""
    if optimizer is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None


def _loss_facts(loss: Any) -> list[dict[str, Any]]:
    if loss is None:
        return []
    if isinstance(loss, dict):
        return [{"output": str(key), **_one_loss(value)} for key, value in loss.items()]
    if isinstance(loss, (list, tuple)):
        return [{"output": str(index), **_one_loss(value)} for index, value in enumerate(loss)]
    return [_one_loss(loss)]


def _one_loss(loss: Any) -> dict[str, Any]:
    if isinstance(loss, str):
        return {"name": loss, "from_logits": False}
    if isinstance(loss, keras.losses.Loss):
        config = loss.get_config()
        return {"name": type(loss).__name__, "from_logits": bool(config.get("from_logits", False))}
    return {"name": getattr(loss, "__name__", type(loss).__name__), "from_logits": False}


def _outputs(layout: ProbeLayout, kinds: dict[str, LayerEntry]) -> list[dict[str, Any]]:
    heads = []
    for path, units in zip(layout.outputs, layout.output_units):
        entry = kinds.get(path)
        heads.append(
            {
                "layer": path,
                "activation": layout.metadata[path].activation if path in layout.metadata else (
                    entry.activation.name if entry else ""
                ),
                "units": units,
            }
        )
    return heads


def model_facts(
    model: keras.Model,
    entries: list[LayerEntry],
    layout: ProbeLayout,
    *,
    probe: dict[str, Any],
) -> dict[str, Any]:
    """The model facts document for one ``fit``; ``probe`` describes how the probe measured."""
    kinds = {entry.path: entry for entry in entries}
    order = {path: index for index, path in enumerate(layout.order)}
    ordered = sorted(entries, key=lambda entry: order.get(entry.path, len(order)))
    return {
        "model": {
            "name": model.name,
            "class": type(model).__name__,
            "parameters": int(model.count_params()),
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "backend_version": backend_version(),
            "dtype_policy": keras.config.dtype_policy().name,
        },
        "probe": probe,
        "layers": [_layer_facts(entry, layout, kinds) for entry in ordered],
        "merges": [
            {"layer": entry.path, "class": entry.layer_class, "inputs": list(layout.inputs.get(entry.path, []))}
            for entry in ordered
            if entry.layer_class in MERGE_LAYER_CLASSES
        ],
        "outputs": _outputs(layout, kinds),
        "optimizer": _optimizer_facts(getattr(model, "optimizer", None)),
        "loss": _loss_facts(getattr(model, "loss", None)),
    }

"""Which layers of a model the probe measures, and what kind of layer each is.

:func:`walk_layers` lists every layer of a model (nested models under their
own name) as a :class:`LayerEntry`: measured, or skipped with the reason, so
nothing is dropped without a word. :func:`describe_activation` names the
activation a layer ends with, with its parameters (``relu6``'s cap, LeakyReLU's
slope) and where the name was read from.

>>> import keras
>>> layers = [keras.layers.Dense(2, activation="relu", name="hidden"), keras.layers.Flatten(name="flat")]
>>> [(e.path, e.measured) for e in walk_layers(keras.Sequential([keras.Input((4,)), *layers]))]
[('hidden', True), ('flat', False)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras

from keras_relu_doctor.tags import (
    REASON_FUSED_ATTENTION,
    REASON_MERGE,
    REASON_SHAPE_ONLY,
    REASON_THROUGH_SUBLAYERS,
)

# Layers that are an activation: their input is the pre-activation.
ACTIVATION_LAYER_CLASSES = ("ReLU", "LeakyReLU", "PReLU", "ELU", "Activation", "Softmax")
# Layers measured even without weights or activation: pooling can amplify
# outputs to large values upstream of a dying layer (in a reported case of dead
# ReLUs after loss spikes, max-pooled features reached two-digit values).
POOLING_MARKER = "Pooling"
# Layers that join several inputs: recorded in the model facts (residual
# shortcuts), not measured (their output is the sum or stack of measured ones).
MERGE_LAYER_CLASSES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot")
# Normalisation layers, by a word of their class name (BatchNormalization,
# LayerNormalization, GroupNormalization...).
NORMALIZATION_MARKERS = ("Normalization",)
# Activation functions recognised by name in a Lambda's function or its code.
KNOWN_ACTIVATIONS = (
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish", "softplus",
    "softsign", "tanh", "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish", "softmax", "exponential",
    "log_softmax", "celu", "glu", "hard_tanh", "sparse_plus", "squareplus", "linear",
)
# Where an activation's name was read from.
SOURCE_LAYER = "layer"  # the layer's class or its `activation` argument
SOURCE_FUNCTION = "function"  # the function a Lambda layer wraps
SOURCE_OUTPUT = "output"  # the measured output: never negative, exact zeros
SOURCE_UNKNOWN = ""

@dataclass(frozen=True)
class Activation:
    """The activation a layer ends with: name, parameters, and where the name came from."""

    name: str = ""
    params: dict[str, float] = field(default_factory=dict)
    source: str = SOURCE_UNKNOWN


@dataclass
class LayerEntry:
    """One layer of the model: its path, whether it is measured, and why not.

    ``composite`` entries are custom layers measured as a whole while their
    sublayers are measured too.
    """

    path: str
    layer: keras.layers.Layer
    measured: bool
    reason: str = ""
    activation: Activation = field(default_factory=Activation)
    composite: bool = False
    weights: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def layer_class(self) -> str:
        return type(self.layer).__name__

    @property
    def is_activation_layer(self) -> bool:
        return self.layer_class in ACTIVATION_LAYER_CLASSES

    @property
    def has_fused_activation(self) -> bool:
        """A layer computing ``activation(linear(x))`` itself (Dense, Conv with ``activation=``)."""
        return (
            not self.is_activation_layer
            and not is_recurrent(self.layer)
            and callable(getattr(self.layer, "activation", None))
            and self.activation.name not in ("", "linear")
        )

    @property
    def opaque(self) -> bool:
        """A Lambda or custom layer: what its output is, only its function or its output tells."""
        return isinstance(self.layer, keras.layers.Lambda) or not _is_builtin(self.layer)

    @property
    def uses_batch_statistics(self) -> bool:
        return isinstance(self.layer, keras.layers.BatchNormalization)


def _children(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return []
    return list(flatten(include_self=False, recursive=False))


def is_recurrent(layer: keras.layers.Layer) -> bool:
    """RNN layers and the wrappers that run one: measured as a whole, never their cells."""
    return isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))


def _is_wrapper(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Wrapper) and not isinstance(layer, keras.layers.Bidirectional)


def _is_builtin(layer: keras.layers.Layer) -> bool:
    return type(layer).__module__.startswith("keras.")


def _function_name(function: Any) -> str:
    name = getattr(function, "__name__", None) or type(function).__name__
    return str(name).lower()


def _relu_activation(max_value: Any, negative_slope: float, threshold: float) -> Activation:
    params = {"negative_slope": float(negative_slope), "threshold": float(threshold)}
    if max_value is not None:
        params["max_value"] = float(max_value)
    if negative_slope:
        name = "leaky_relu"
    elif max_value is not None and float(max_value) == 6.0:
        name = "relu6"
    else:
        name = "relu"
    return Activation(name, params, SOURCE_LAYER)


def _lambda_activation(function: Any) -> Activation:
    name = _function_name(function)
    if name in KNOWN_ACTIVATIONS:
        return Activation(name, {}, SOURCE_FUNCTION)
    code = getattr(function, "__code__", None)
    if code is not None:
        named = [word.lower() for word in code.co_names if word.lower() in KNOWN_ACTIVATIONS]
        if len(set(named)) == 1:
            return Activation(named[0], {}, SOURCE_FUNCTION)
    return Activation()


def describe_activation(layer: keras.layers.Layer) -> Activation:
    """The activation ``layer`` ends with, as far as the layer itself says.

    >>> describe_activation(keras.layers.ReLU(max_value=6.0)).name
    'relu6'
    >>> describe_activation(keras.layers.LeakyReLU(negative_slope=0.2)).params
    {'negative_slope': 0.2}
    """
    name = type(layer).__name__
    if name == "ReLU":
        return _relu_activation(layer.max_value, layer.negative_slope, layer.threshold)
    if name == "LeakyReLU":
        return Activation("leaky_relu", {"negative_slope": float(layer.negative_slope)}, SOURCE_LAYER)
    if name == "PReLU":
        return Activation("prelu", {}, SOURCE_LAYER)
    if name == "ELU":
        return Activation("elu", {"alpha": float(layer.alpha)}, SOURCE_LAYER)
    if name == "Softmax":
        return Activation("softmax", {}, SOURCE_LAYER)
    if isinstance(layer, keras.layers.Lambda):
        return _lambda_activation(layer.function)
    if isinstance(layer, keras.layers.Bidirectional):
        return describe_activation(layer.forward_layer)
    if _is_wrapper(layer):
        return describe_activation(layer.layer)
    activation = getattr(layer, "activation", None)
    if callable(activation):
        return Activation(_function_name(activation), {}, SOURCE_LAYER)
    return Activation()


def _weight_name(layer: keras.layers.Layer, variable: Any, index: int) -> str:
    """``kernel``, ``bias``...; recurrent and wrapped layers keep the sublayer (``forward_lstm.kernel``).

    Cell names (``lstm_cell``) are dropped: they add nothing to the layer's name.
    """
    path = str(getattr(variable, "path", "") or variable.name)
    own = str(getattr(layer, "path", "") or layer.name)
    relative = path[len(own) + 1 :] if path.startswith(own + "/") else path.split("/")[-1]
    parts = [part for part in relative.split(":")[0].split("/") if part and not part.endswith("_cell")]
    return ".".join(parts) or f"weight_{index}"


def named_weights(layer: keras.layers.Layer) -> list[tuple[str, Any]]:
    """The layer's trainable weights with tag-safe names (no ``/``), unique within the layer."""
    named: list[tuple[str, Any]] = []
    used: set[str] = set()
    for index, variable in enumerate(layer.trainable_weights):
        name = _weight_name(layer, variable, index)
        if name in used:
            name = f"{name}_{index}"
        used.add(name)
        named.append((name, variable))
    return named


def _worth_measuring(layer: keras.layers.Layer, activation: Activation) -> bool:
    name = type(layer).__name__
    if layer.weights or name in ACTIVATION_LAYER_CLASSES or POOLING_MARKER in name:
        return True
    if is_recurrent(layer) or _is_wrapper(layer) or isinstance(layer, keras.layers.Lambda):
        return True
    if not _is_builtin(layer):
        return True  # a custom layer: what it computes is unknown, so look
    return activation.name not in ("", "linear")


def walk_layers(model: keras.Model) -> list[LayerEntry]:
    """Every layer of ``model`` below the model itself, in model order, measured or not.

    Models nested as layers contribute their layers under their name
    (``encoder/dense``). Recurrent layers and wrappers are measured whole;
    custom layers with sublayers are measured whole *and* through their
    sublayers; Keras' own composite layers (``MultiHeadAttention``) through
    their sublayers (its softmax is the ``softmax`` sublayer). Composite
    entries come before their sublayers.
    """
    entries: list[LayerEntry] = []
    seen: set[int] = set()

    def visit(parent: keras.layers.Layer, prefix: str) -> None:
        for child in _children(parent):
            if id(child) in seen or type(child).__name__ == "InputLayer":
                continue
            seen.add(id(child))
            path = f"{prefix}{child.name}"
            activation = describe_activation(child)
            grandchildren = _children(child)
            if is_recurrent(child) or _is_wrapper(child) or not grandchildren:
                measured = _worth_measuring(child, activation)
                reason = "" if measured else (
                    REASON_MERGE if type(child).__name__ in MERGE_LAYER_CLASSES else REASON_SHAPE_ONLY
                )
                if measured and type(child).__name__ == "Softmax" and getattr(parent, "_flash_attention", False):
                    measured, reason = False, REASON_FUSED_ATTENTION
                entries.append(
                    LayerEntry(path, child, measured, reason, activation,
                               weights=named_weights(child) if measured else [])
                )
                continue
            if not isinstance(child, keras.Model):
                if _is_builtin(child):
                    entries.append(LayerEntry(path, child, False, REASON_THROUGH_SUBLAYERS, activation, composite=True))
                else:
                    # Its own weights only; its sublayers' are measured with them.
                    own = [(n, v) for n, v in named_weights(child) if "." not in n]
                    entries.append(LayerEntry(path, child, True, "", activation, composite=True, weights=own))
            visit(child, path + "/")

    visit(model, "")
    return entries

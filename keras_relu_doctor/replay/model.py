"""Build one run's model, and measure which of its hidden units are dead. Needs Keras.

Hidden layers are ``Dense(16)`` named ``dense_1`` ... ``dense_<depth>`` (fixed names,
so runs compare layer by layer), each followed by Dropout/AlphaDropout when the
spec asks; the head is a linear ``Dense(1)`` named ``output`` (sigmoid for random
labels). With the article's head the output unit uses the activation too and
counts as one of the ``depth`` layers (``dense_1`` ... ``dense_<depth-1>``, then
``output``), and it is measured with them. Biases start at zero, as in the article.

Example (needs a Keras backend):

```python
model = build_model(RunSpec(activation="relu", initializer="negative", depth=3, seed=0))
dead_fractions(model, data.x_val[:512])  # {'dense_1': 0.0, 'dense_2': 1.0, 'dense_3': 1.0}
```
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_relu_doctor.replay.grid import HEAD_ARTICLE, RunSpec

if TYPE_CHECKING:  # pragma: no cover
    import keras

OUTPUT_LAYER = "output"
HIDDEN_LAYER = re.compile(r"dense_\d+")
# A unit is active on a sample when |output| > tolerance (the callback's default):
# dead units are active on no probe sample, near-dead ones (|out| ~ 1e-7) included.
TOLERANCE = 1e-6


def hidden_layer_names(depth: int) -> list[str]:
    """Names of the hidden Dense layers of a model of this depth.

    >>> hidden_layer_names(3)
    ['dense_1', 'dense_2', 'dense_3']
    """
    return [f"dense_{index}" for index in range(1, depth + 1)]


def _initializer(name: str) -> Any:
    import keras

    if name == "negative":
        return keras.initializers.RandomUniform(minval=-1.0, maxval=0.0)
    return keras.initializers.get(name)


def build_model(spec: RunSpec) -> keras.Model:
    """The compiled model of ``spec`` (call after ``keras.utils.set_random_seed``)."""
    import keras

    inputs = keras.Input(shape=(4,), name="x")
    hidden = inputs
    article = spec.head == HEAD_ARTICLE
    for name in hidden_layer_names(spec.depth - 1 if article else spec.depth):
        hidden = keras.layers.Dense(
            spec.units,
            activation=spec.activation,
            kernel_initializer=_initializer(spec.initializer),
            bias_initializer="zeros",
            name=name,
        )(hidden)
        if spec.dropout == "dropout":
            hidden = keras.layers.Dropout(spec.dropout_rate, name=f"{name}_dropout")(hidden)
        elif spec.dropout == "alpha_dropout":
            hidden = keras.layers.AlphaDropout(spec.dropout_rate, name=f"{name}_dropout")(hidden)
    classify = spec.target == "random-labels"
    if article:
        head = keras.layers.Dense(1, activation=spec.activation, kernel_initializer=_initializer(spec.initializer),
                                  bias_initializer="zeros", name=OUTPUT_LAYER)  # fmt: skip
    else:
        head = keras.layers.Dense(1, activation="sigmoid" if classify else None, name=OUTPUT_LAYER)
    outputs = head(hidden)
    model = keras.Model(inputs, outputs, name=spec.setting.replace("-", "_"))
    model.compile(
        optimizer=keras.optimizers.Adam(spec.learning_rate),
        loss="binary_crossentropy" if classify else "mse",
    )
    return model


def measured_layer(name: str, head: str) -> bool:
    """Whether a layer's units are counted: the hidden Dense layers, and the output unit under the article's head.

    >>> measured_layer("output", "linear"), measured_layer("output", "article"), measured_layer("dense_2", "linear")
    (False, True, True)
    """
    return bool(HIDDEN_LAYER.fullmatch(name)) or (head == HEAD_ARTICLE and name == OUTPUT_LAYER)


def hidden_outputs(model: keras.Model, head: str = "linear") -> tuple[list[str], keras.Model]:
    """The measured layers' names (:func:`measured_layer`), and a model from the input to their outputs."""
    import keras

    names = [layer.name for layer in model.layers if measured_layer(layer.name, head)]
    return names, keras.Model(model.input, [model.get_layer(name).output for name in names])


def dead_fractions(
    model: keras.Model,
    x_probe: np.ndarray,
    *,
    tolerance: float = TOLERANCE,
    probe_model: tuple[list[str], keras.Model] | None = None,
    head: str = "linear",
) -> dict[str, float]:
    """Share of units of each measured layer (:func:`measured_layer`) that are active on no probe sample.

    Measured directly on the model (inference mode), independent of the callback.
    Pass ``probe_model=hidden_outputs(model)`` to measure the same model repeatedly.
    """
    import keras

    names, outputs_model = probe_model or hidden_outputs(model, head)
    outputs = outputs_model(x_probe, training=False)
    if len(names) == 1:  # a functional model with one output returns it bare, not in a list
        outputs = [outputs]
    fractions = {}
    for name, values in zip(names, outputs):
        max_abs = np.max(np.abs(keras.ops.convert_to_numpy(values)), axis=0)
        fractions[name] = float(np.mean(max_abs <= tolerance))
    return fractions

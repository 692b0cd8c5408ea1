"""The deep-stack model: a stem convolution, N blocks of two convolutions, a softmax head. Needs Keras.

Layers: ``stem`` (Conv2D 16, 3x3), then ``block<i>_conv1`` and ``block<i>_conv2``
(Conv2D 16, 3x3, 'same'), each followed by BatchNormalization (``block<i>_bn1``...)
and its activation layer (``block<i>_act1``...) in the ``bn`` form, with the
activation fused otherwise; in the ``res`` form the block's input is added to
its output (``block<i>_add``), as the article's ResBlock does. Then Flatten and
``output`` (Dense 10, softmax). Kernels start from Keras' default
(``glorot_uniform``, zero biases), or U(-0.5, 0.5) for the large-initializer
settings (the article's ``nn.init.uniform_(weight, -0.5, 0.5)``). Trained with
Adam; the clipping settings pass ``clipnorm`` to it.

Example (needs a Keras backend):

```python
model = build_stack_model(StackSpec("sigmoid", 8))
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras_relu_doctor.replay.deep_stack.data import CLASSES, SIDE
from keras_relu_doctor.replay.deep_stack.grid import INIT_LARGE, StackSpec

if TYPE_CHECKING:  # pragma: no cover
    import keras

FILTERS = 16
KERNEL = 3
# Moving statistics settle within the few hundred steps of a quick run (Keras' 0.99 needs ~500).
BN_MOMENTUM = 0.9
LARGE_INIT = 0.5  # the article's nn.init.uniform_(weight, -0.5, 0.5)


def conv_layer_names(blocks: int) -> list[str]:
    """The convolutions in model order, the stem first (the layers whose gradients the claims compare).

    >>> conv_layer_names(2)
    ['stem', 'block1_conv1', 'block1_conv2', 'block2_conv1', 'block2_conv2']
    """
    return ["stem"] + [f"block{block}_conv{index}" for block in range(1, blocks + 1) for index in (1, 2)]


def _initializers(spec: StackSpec, fan_in: int) -> dict[str, Any]:
    """PyTorch's default (weights and biases U(+-1/sqrt(fan_in))), or the article's large weights."""
    import keras

    if spec.init == INIT_LARGE:
        return {"kernel_initializer": keras.initializers.RandomUniform(-LARGE_INIT, LARGE_INIT)}
    return {"kernel_initializer": "glorot_uniform"}


def _conv(spec: StackSpec, name: str, inputs: Any, channels: int) -> Any:
    import keras

    init = _initializers(spec, KERNEL * KERNEL * channels)
    if spec.form != "bn":
        return keras.layers.Conv2D(FILTERS, KERNEL, padding="same", activation=spec.activation, name=name, **init)(inputs)
    hidden = keras.layers.Conv2D(FILTERS, KERNEL, padding="same", name=name, **init)(inputs)
    suffix = name.rsplit("conv", 1)[-1]
    hidden = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name.replace(f"conv{suffix}", f"bn{suffix}"))(hidden)
    return keras.layers.Activation(spec.activation, name=name.replace(f"conv{suffix}", f"act{suffix}"))(hidden)


def build_stack_model(spec: StackSpec) -> keras.Model:
    """The compiled model of ``spec`` (call after ``keras.utils.set_random_seed``)."""
    import keras

    inputs = keras.Input((SIDE, SIDE, 1), name="image")
    stem = _initializers(spec, KERNEL * KERNEL)
    hidden = keras.layers.Conv2D(FILTERS, KERNEL, padding="same", activation=spec.activation, name="stem", **stem)(inputs)
    for block in range(1, spec.blocks + 1):
        inner = _conv(spec, f"block{block}_conv1", hidden, FILTERS)
        inner = _conv(spec, f"block{block}_conv2", inner, FILTERS)
        hidden = keras.layers.Add(name=f"block{block}_add")([hidden, inner]) if spec.form == "res" else inner
    hidden = keras.layers.Flatten(name="flatten")(hidden)
    head = _initializers(spec, SIDE * SIDE * FILTERS)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="output", **head)(hidden)
    model = keras.Model(inputs, outputs, name=spec.setting.replace("-", "_"))
    optimizer = keras.optimizers.Adam(spec.learning_rate, clipnorm=spec.clip or None)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

"""The loss-spikes model: two convolutions, a pooling layer, a dense layer, a softmax head. Needs Keras.

Layers: ``conv1`` and ``conv2`` (Conv2D 32, 3x3, 'same'), ``pool`` (2x2 max or
average pooling), ``l2norm`` (``UnitNormalization`` over channels, when asked),
``flatten``, ``dense`` (64 units), ``output`` (Dense 10, softmax). With ReLU the
activation is fused into ``conv1``, ``conv2`` and ``dense``; with PReLU it is a
layer after each (``conv1_act``...). Adam, at a constant rate or with linear
warmup (``CosineDecay`` with ``warmup_steps`` and no decay after it).

Example (needs a Keras backend):

```python
model = build_spike_model(SpikeSpec(pool="avg"))
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras_relu_doctor.replay.deep_stack.data import CLASSES, SIDE
from keras_relu_doctor.replay.spikes.grid import SpikeSpec

if TYPE_CHECKING:  # pragma: no cover
    import keras

FILTERS = 32
DENSE_UNITS = 64
RECTIFIED = ("conv1", "conv2", "dense")  # the layers whose units can die


def _rectified(spec: SpikeSpec, layer: Any, inputs: Any) -> Any:
    import keras

    if spec.activation == "prelu":
        return keras.layers.PReLU(name=f"{layer.name}_act")(layer(inputs))
    return layer(inputs)


def _learning_rate(spec: SpikeSpec) -> Any:
    import keras

    if not spec.warmup_steps:
        return spec.learning_rate
    # Linear from 0 to the rate over warmup_steps, then constant (alpha=1: no decay).
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=1, alpha=1.0, warmup_target=spec.learning_rate,
                                                  warmup_steps=spec.warmup_steps)  # fmt: skip


def build_spike_model(spec: SpikeSpec) -> keras.Model:
    """The compiled model of ``spec`` (call after ``keras.utils.set_random_seed``)."""
    import keras

    fused = "relu" if spec.activation == "relu" else None
    inputs = keras.Input((SIDE, SIDE, 1), name="image")
    hidden = _rectified(spec, keras.layers.Conv2D(FILTERS, 3, padding="same", activation=fused, name="conv1"), inputs)
    hidden = _rectified(spec, keras.layers.Conv2D(FILTERS, 3, padding="same", activation=fused, name="conv2"), hidden)
    pooling = keras.layers.MaxPooling2D if spec.pool == "max" else keras.layers.AveragePooling2D
    hidden = pooling(2, name="pool")(hidden)
    if spec.l2norm:
        hidden = keras.layers.UnitNormalization(axis=-1, name="l2norm")(hidden)
    hidden = keras.layers.Flatten(name="flatten")(hidden)
    hidden = _rectified(spec, keras.layers.Dense(DENSE_UNITS, activation=fused, name="dense"), hidden)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="output")(hidden)
    model = keras.Model(inputs, outputs, name=spec.setting.replace("-", "_"))
    model.compile(optimizer=keras.optimizers.Adam(_learning_rate(spec)), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    return model

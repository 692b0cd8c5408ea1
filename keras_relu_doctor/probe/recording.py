"""Observe a forward pass while it is traced: layer outputs, pre-activations, the layer graph.

:func:`recording` wraps, for the duration of one trace, every layer's ``call``
(and the ``activation`` attribute of fused layers such as
``Dense(..., activation="relu")``) so that the output and the input of the
activation are recorded and watched by the gradient tape, and the tensors
each layer consumed are traced back to the layers that made them. The
wrappers only observe, with two deliberate exceptions that make the probe
measure what the optimizer trains:

- in training mode, ``BatchNormalization`` layers get ``training=True``
  (batch statistics) while every other layer runs with ``training=False``
  (Dropout, noise and augmentation off); the moving statistics they would
  update are kept untouched by the ``keras.StatelessScope`` the caller opens;
- ``MultiHeadAttention`` is asked for its attention scores, which makes it
  compute the softmax explicitly instead of in ``dot_product_attention``, so
  the softmax can be measured (same result up to float rounding).

Every patch is undone on exit, also when tracing fails.

Example (inside a ``tf.function``)::

    with tf.GradientTape() as tape, keras.StatelessScope():
        with recording(entries, tape, batch_statistics=True) as trace:
            y_pred = model(x, training=False)
    trace.records["dense"].output
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import keras
import tensorflow as tf

from keras_relu_doctor.probe.layers import LayerEntry

# Ops walked back from a layer's input to find the layers that made it (casts,
# identities and raw ``keras.ops`` between layers); bounded so tracing stays cheap.
MAX_OPS_WALKED = 64
INPUT = "<input>"  # producer of the model's own inputs


@dataclass
class Record:
    """What one layer produced during the trace."""

    output: tf.Tensor | None = None
    preactivation: tf.Tensor | None = None
    called: bool = False
    float_output: bool = True
    # The pre-activation is a measured layer's output as it is: its histogram is written there.
    preactivation_is_measured: bool = False


@dataclass
class Trace:
    """Outputs per layer path, and the layer graph as the forward pass ran it."""

    records: dict[str, Record] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    _producers: dict[Any, str] = field(default_factory=dict)

    def register(self, tensors: Any, path: str) -> None:
        for tensor in _tensors(tensors):
            self._producers[_key(tensor)] = path

    def producers(self, tensors: Any) -> list[str]:
        """The layers (or ``<input>``) whose outputs ``tensors`` were computed from."""
        found: list[str] = []
        for tensor in _tensors(tensors):
            for path in self._producers_of(tensor):
                if path not in found:
                    found.append(path)
        return found

    def _producers_of(self, tensor: tf.Tensor) -> list[str]:
        known = self._producers.get(_key(tensor))
        if known is not None:
            return [known]
        op = getattr(tensor, "op", None)
        if op is None:
            return []
        found: list[str] = []
        stack, seen = [op], set()
        while stack and len(seen) < MAX_OPS_WALKED:
            op = stack.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            if op.type == "Placeholder" or not op.inputs:
                if op.type == "Placeholder" and INPUT not in found:
                    found.append(INPUT)
                continue
            for source in op.inputs:
                path = self._producers.get(_key(source))
                if path is not None:
                    if path not in found:
                        found.append(path)
                elif source.dtype != tf.resource:
                    stack.append(source.op)
        return found


def _key(tensor: Any) -> Any:
    try:
        return tensor.name  # graph tensors: unique in their FuncGraph
    except (AttributeError, ValueError):
        return id(tensor)


def _tensors(values: Any) -> list[tf.Tensor]:
    return [value for value in keras.tree.flatten(values) if isinstance(value, tf.Tensor)]


def _first_float(output: Any) -> tf.Tensor | None:
    """The output to measure: the tensor, or the first of a tuple (an RNN's sequence before its states)."""
    tensors = _tensors(output)
    if not tensors:
        return None
    first = tensors[0]
    return first if first.dtype.is_floating else None


def _data_inputs(args: tuple, kwargs: dict) -> list[tf.Tensor]:
    """Tensors a layer computes from: positional and named inputs, not masks or flags."""
    named = [value for key, value in kwargs.items() if "mask" not in key and key != "training"]
    return _tensors(list(args) + named)


@contextlib.contextmanager
def recording(entries: list[LayerEntry], tape: tf.GradientTape, *, batch_statistics: bool) -> Iterator[Trace]:
    """Wrap every entry's layer for one trace; yield the :class:`Trace` that fills as the model runs."""
    trace = Trace()
    restore: list[Callable[[], None]] = []

    def patch(obj: Any, name: str, value: Any) -> None:
        had = name in obj.__dict__
        old = obj.__dict__.get(name)
        object.__setattr__(obj, name, value)

        def undo() -> None:
            if had:
                object.__setattr__(obj, name, old)
            else:
                object.__delattr__(obj, name)

        restore.append(undo)

    for entry in entries:
        record = trace.records.setdefault(entry.path, Record())
        layer = entry.layer
        force_training = batch_statistics and entry.uses_batch_statistics

        def recording_call(
            *args: Any, __call=layer.call, __rec=record, __e=entry, __train=force_training, **kwargs: Any
        ) -> Any:
            inputs = _data_inputs(args, kwargs)
            if not __rec.called:
                trace.inputs[__e.path] = trace.producers(inputs)
                trace.order.append(__e.path)
            if __train:
                kwargs["training"] = True
            if __e.measured and __e.is_activation_layer and inputs and __rec.preactivation is None:
                __rec.preactivation = inputs[0]
                producer = trace.records.get(trace._producers.get(_key(inputs[0]), ""))
                __rec.preactivation_is_measured = producer is not None and producer.output is inputs[0]
            output = __call(*args, **kwargs)
            if __e.measured and __rec.output is None:
                measured = _first_float(output)
                __rec.float_output = measured is not None or not _tensors(output)
                if measured is not None:
                    tape.watch(measured)
                    __rec.output = measured
            __rec.called = True
            trace.register(output, __e.path)
            return output

        patch(layer, "call", recording_call)
        if entry.measured and entry.has_fused_activation:

            def recording_activation(x: Any, *args: Any, __act=layer.activation, __rec=record, **kwargs: Any) -> Any:
                if __rec.preactivation is None and isinstance(x, tf.Tensor):
                    __rec.preactivation = x
                return __act(x, *args, **kwargs)

            patch(layer, "activation", recording_activation)
        if isinstance(layer, keras.layers.MultiHeadAttention) and not getattr(layer, "_flash_attention", False):

            def explicit_attention(*args: Any, __compute=layer._compute_attention, **kwargs: Any) -> Any:
                bound = inspect.signature(__compute).bind(*args, **kwargs)
                bound.arguments["return_attention_scores"] = True
                return __compute(*bound.args, **bound.kwargs)

            patch(layer, "_compute_attention", explicit_attention)
    try:
        yield trace
    finally:
        for undo in reversed(restore):
            undo()

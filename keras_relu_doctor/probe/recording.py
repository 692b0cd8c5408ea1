"""Observe a forward pass while it is traced: layer outputs, pre-activations, the layer graph.

:func:`recording` wraps, for the duration of one trace, every layer's ``call``
(and the ``activation`` attribute of fused layers such as
``Dense(..., activation="relu")``) so that the output and the input of the
activation are recorded and handed to the backend's ``watch`` (TensorFlow's
gradient tape watches them; JAX adds a zero it differentiates by), and the
tensors each layer consumed are traced back to the layers that made them
(through TensorFlow's graph or PyTorch's autograd graph where ops sit
between layers). It runs on every Keras backend. The wrappers only observe,
with two deliberate exceptions that make the probe measure what the
optimizer trains:

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
        with recording(entries, lambda path, tensor: tape.watch(tensor), batch_statistics=True) as trace:
            y_pred = model(x, training=False)
    trace.records["dense"].output
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import keras

from keras_relu_doctor.probe.layers import LayerEntry

# Ops walked back from a layer's input to find the layers that made it (casts,
# identities and raw ``keras.ops`` between layers); bounded so tracing stays cheap.
MAX_OPS_WALKED = 64
INPUT = "<input>"  # producer of the model's own inputs
# Sees a measured layer's output; may return a tensor of the same values to use instead.
Watch = Callable[[str, Any], Any]


@dataclass
class Record:
    """What one layer produced during the trace."""

    output: Any = None
    preactivation: Any = None
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
    # Tensors keyed by id() stay alive while the trace runs, so no id is reused.
    _kept: list[Any] = field(default_factory=list)

    def register(self, tensors: Any, path: str) -> None:
        for tensor in _tensors(tensors):
            self._producers[_key(tensor)] = path
            self._kept.append(tensor)
            grad_fn = getattr(tensor, "grad_fn", None)  # PyTorch: the node that made it
            if grad_fn is not None:
                self._producers[("grad_fn", id(grad_fn))] = path
                self._kept.append(grad_fn)

    def producer(self, tensor: Any) -> str | None:
        """The layer whose output ``tensor`` is, if it is one."""
        return self._producers.get(_key(tensor))

    def producers(self, tensors: Any) -> list[str]:
        """The layers (or ``<input>``) whose outputs ``tensors`` were computed from."""
        found: list[str] = []
        for tensor in _tensors(tensors):
            for path in self._producers_of(tensor):
                if path not in found:
                    found.append(path)
        return found

    def _producers_of(self, tensor: Any) -> list[str]:
        known = self._producers.get(_key(tensor))
        if known is not None:
            return [known]
        if getattr(tensor, "grad_fn", None) is not None or _is_torch_leaf(tensor):
            return self._autograd_producers(tensor)
        op = getattr(tensor, "op", None)
        if op is None:
            return []
        import tensorflow as tf

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


    def _autograd_producers(self, tensor: Any) -> list[str]:
        """PyTorch: walk the autograd graph back from ``tensor`` to the layers (or the input) it came from."""
        found: list[str] = []
        stack, seen = [getattr(tensor, "grad_fn", None)], set()
        if stack[0] is None:
            return [INPUT]  # a leaf that is no layer's output: the model's input
        while stack and len(seen) < MAX_OPS_WALKED:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            path = self._producers.get(("grad_fn", id(node)))
            if path is not None:
                if path not in found:
                    found.append(path)
                continue
            stack.extend(next_node for next_node, _ in node.next_functions)
        return found


def _is_torch_leaf(tensor: Any) -> bool:
    return type(tensor).__module__.startswith("torch") and getattr(tensor, "grad_fn", 1) is None


def _key(tensor: Any) -> Any:
    if keras.backend.backend() == "tensorflow":
        try:
            return tensor.name  # graph tensors: unique in their FuncGraph
        except (AttributeError, ValueError):
            pass
    return id(tensor)


def _is_tensor(value: Any) -> bool:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return isinstance(value, tf.Tensor)  # not variables, which tf.is_tensor also accepts
    return keras.ops.is_tensor(value)


def _tensors(values: Any) -> list[Any]:
    return [value for value in keras.tree.flatten(values) if _is_tensor(value)]


def _first_float(output: Any) -> Any:
    """The output to measure: the tensor, or the first of a tuple (an RNN's sequence before its states)."""
    tensors = _tensors(output)
    if not tensors:
        return None
    first = tensors[0]
    return first if "float" in keras.backend.standardize_dtype(first.dtype) else None


def _data_inputs(args: tuple, kwargs: dict) -> list[Any]:
    """Tensors a layer computes from: positional and named inputs, not masks or flags."""
    named = [value for key, value in kwargs.items() if "mask" not in key and key != "training"]
    return _tensors(list(args) + named)


@contextlib.contextmanager
def recording(
    entries: list[LayerEntry], watch: Watch | None, *, batch_statistics: bool
) -> Iterator[Trace]:
    """Wrap every entry's layer for one trace; yield the :class:`Trace` that fills as the model runs.

    ``watch(path, output)`` sees each measured layer's output first; what it
    returns, when not None, replaces the output downstream (it must hold the
    same values).
    """
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
                producer = trace.records.get(trace.producer(inputs[0]) or "")
                __rec.preactivation_is_measured = producer is not None and producer.output is inputs[0]
            output = __call(*args, **kwargs)
            if __e.measured and __rec.output is None:
                measured = _first_float(output)
                __rec.float_output = measured is not None or not _tensors(output)
                if measured is not None and watch is not None:
                    watched = watch(__e.path, measured)
                    if watched is not None:
                        output = keras.tree.map_structure(lambda t: watched if t is measured else t, output)
                        measured = watched
                if measured is not None:
                    __rec.output = measured
            __rec.called = True
            trace.register(output, __e.path)
            return output

        patch(layer, "call", recording_call)
        if entry.measured and entry.has_fused_activation:

            def recording_activation(x: Any, *args: Any, __act=layer.activation, __rec=record, **kwargs: Any) -> Any:
                if __rec.preactivation is None and _is_tensor(x):
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

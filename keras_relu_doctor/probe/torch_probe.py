"""The probe on the PyTorch backend: eager forward passes, gradients by ``torch.autograd.grad``.

The forward pass runs inside a ``keras.StatelessScope`` (whatever it would
assign, moving statistics or seed generator states, is dropped with the
scope) and ``torch.autograd.grad`` returns the gradients without touching
any parameter's ``.grad``: measuring has no side effect. Liveness and
histograms come from a pass over every probe sample without autograd; the
gradients from a pass over the first ``gradient_samples`` samples (one pass
when the probe holds no more). The reductions (:mod:`.reductions`) run as
``keras.ops`` on the tensors; :mod:`.statistics` computes the logged values
in numpy.

Example (inside the callback)::

    probe = TorchProbe(model, entries, loss_fn, settings)
    probe.build(x, y, None)
    write_probe(event_writer, probe.layout, probe(x, y, None), step)
"""

from __future__ import annotations

from typing import Any

from keras_relu_doctor.probe.forward import Pass, ProbeBase, recorded_pass
from keras_relu_doctor.probe.layout import fill_layout
from keras_relu_doctor.probe.reductions import gradient_reductions, output_reductions


class TorchProbe(ProbeBase):
    """The measurement of ``model`` on the PyTorch backend (see the module docstring)."""

    def build(self, x: Any, y: Any, sample_weight: Any) -> None:
        """Run the model once on the probe batch (with autograd, which shows the layer graph) to fill ``layout``."""
        forward = self._run(self.gradient_batch((x, y, sample_weight)))
        fill_layout(self.layout, self.entries, forward.trace, forward.y_pred)
        self._reached = [entry for entry in self._measured if forward.trace.records[entry.path].output is not None]
        self.snapshot(lambda variable: variable.value.detach())

    def __call__(self, x: Any, y: Any, sample_weight: Any) -> dict[str, Any]:
        """Measure once on the current weights; numpy arrays laid out as ``layout`` says."""
        import torch

        batch = (x, y, sample_weight)
        gradient_batch = self.gradient_batch(batch)
        loss = None
        if self.loss_fn is None or gradient_batch is not batch:
            with torch.no_grad():
                forward = self._run(batch)
                outputs, loss = output_reductions(forward.trace, self._reached), forward.loss
            del forward  # its layer outputs are freed before the backward pass's are made
        gradients = None
        if self.loss_fn is not None:
            backward = self._run(gradient_batch)
            weights = [[variable.value for _, variable in entry.weights] for entry in self._reached]
            layer_outputs = [backward.trace.records[entry.path].output for entry in self._reached]
            weight_grads, output_grads = _gradients(backward.loss, weights, layer_outputs)
            with torch.no_grad():
                if gradient_batch is batch:
                    outputs, loss = output_reductions(backward.trace, self._reached), backward.loss
                gradients = gradient_reductions(weight_grads, output_grads)
        with torch.no_grad():
            return self.values(outputs, gradients, loss)

    def _run(self, batch: tuple[Any, Any, Any]) -> Pass:
        return recorded_pass(self.model, self.entries, self.loss_fn, batch, mode=self.settings.mode)


def _gradients(loss: Any, weights: list[list[Any]], outputs: list[Any]) -> tuple[list[list[Any]], list[Any]]:
    """d loss / d each weight and each layer output; zeros where a tensor does not reach the loss."""
    import torch

    flat = [tensor for group in weights for tensor in group] + outputs
    wanted = [index for index, tensor in enumerate(flat) if tensor.requires_grad]
    found = torch.autograd.grad(loss, [flat[i] for i in wanted], allow_unused=True) if wanted else []
    grads = [torch.zeros_like(tensor) for tensor in flat]
    for index, grad in zip(wanted, found):
        if grad is not None:
            grads[index] = grad
    grouped, start = [], 0
    for group in weights:
        grouped.append(grads[start : start + len(group)])
        start += len(group)
    return grouped, grads[start:]

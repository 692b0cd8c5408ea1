"""The probe on the JAX backend: one ``jax.jit`` function, gradients by ``jax.value_and_grad``.

The model runs statelessly, as ``model.stateless_call`` runs it: its
variables' values go in as arguments (a ``keras.StatelessScope`` maps each
variable to its value) and whatever the forward pass assigns (moving
statistics, seed generator states) is dropped with the scope. Every layer is
recorded as on the other backends (:mod:`.recording`); the gradient of the
loss with respect to a layer's output is its gradient with respect to a zero
added to that output. The function returns the reductions of
:mod:`.reductions`; :mod:`.statistics` computes the logged values in numpy.
It is compiled once per ``fit``, for the probe batch.

During ``fit`` Keras' JAX trainer keeps the training state outside the model
and copies it back at each epoch's end; reading the model in the middle of an
epoch (``update_freq=N``) copies it back first, every N batches.

Example (inside the callback)::

    probe = JaxProbe(model, entries, loss_fn, settings)
    probe.build(x, y, None)
    write_probe(event_writer, probe.layout, probe(x, y, None), step)
"""

from __future__ import annotations

from typing import Any

from keras_relu_doctor.probe.forward import Pass, ProbeBase, recorded_pass
from keras_relu_doctor.probe.layout import fill_layout
from keras_relu_doctor.probe.reductions import gradient_reductions, output_reductions


class JaxProbe(ProbeBase):
    """The compiled measurement of ``model`` on the JAX backend (see the module docstring)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._compiled: Any = None
        self._zeros: dict[str, Any] = {}

    # ------------------------------------------------------------------ public
    def build(self, x: Any, y: Any, sample_weight: Any) -> None:
        """Compile for the probe batch (this traces the model once and fills ``layout``)."""
        import jax

        batch = (x, y, sample_weight)
        state = self._state()
        self.snapshot(lambda variable: variable.value)
        if self.loss_fn is not None:
            # The zeros added to each layer's output: shaped as the outputs on the gradient samples.
            shapes = jax.eval_shape(self._output_shapes, *state, self.gradient_batch(batch))
            self._zeros = {path: jax.numpy.zeros(shape.shape, shape.dtype) for path, shape in shapes.items()}
        self._compiled = jax.jit(self._measure).lower(*state, self._zeros, batch).compile()

    def __call__(self, x: Any, y: Any, sample_weight: Any) -> dict[str, Any]:
        """Measure once on the current weights; numpy arrays laid out as ``layout`` says."""
        reduced = self._compiled(*self._state(), self._zeros, (x, y, sample_weight))
        return self.values(reduced["outputs"], reduced.get("gradients"), reduced["loss"])

    # ----------------------------------------------------------------- traced
    def _state(self) -> tuple[list[Any], list[Any]]:
        model = self.model
        return [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]

    def _run(self, trainable: list[Any], non_trainable: list[Any], batch: tuple, watch: Any = None) -> Pass:
        model = self.model
        mapping = list(zip(model.trainable_variables, trainable)) + list(zip(model.non_trainable_variables, non_trainable))
        return recorded_pass(model, self.entries, self.loss_fn, batch, mode=self.settings.mode, watch=watch,
                             state_mapping=mapping)  # fmt: skip

    def _output_shapes(self, trainable: list[Any], non_trainable: list[Any], batch: tuple) -> dict[str, Any]:
        records = self._run(trainable, non_trainable, batch).trace.records
        return {entry.path: records[entry.path].output for entry in self._measured if records[entry.path].output is not None}

    def _outputs(self, forward: Pass) -> list[dict[str, Any]]:
        """Fill the layout from the forward pass (at trace time) and reduce the reached layers' outputs."""
        fill_layout(self.layout, self.entries, forward.trace, forward.y_pred)
        self._reached = [entry for entry in self._measured if forward.trace.records[entry.path].output is not None]
        return output_reductions(forward.trace, self._reached)

    def _measure(self, trainable: list[Any], non_trainable: list[Any], zeros: dict[str, Any], batch: tuple) -> dict:
        import jax

        gradient_batch = self.gradient_batch(batch)
        if self.loss_fn is None:
            forward = self._run(trainable, non_trainable, batch)
            return {"outputs": self._outputs(forward), "loss": 0.0}
        same = gradient_batch is batch

        def loss_of(weights: list[Any], added: dict[str, Any]) -> tuple[Any, Any]:
            watch = lambda path, output: output + added[path] if path in added else None  # noqa: E731
            forward = self._run(weights, non_trainable, gradient_batch, watch)
            return forward.loss, self._outputs(forward) if same else None

        if not same:
            forward = self._run(trainable, non_trainable, batch)
            outputs, loss = self._outputs(forward), forward.loss
        (gradient_loss, aux), (weight_grads, output_grads) = jax.value_and_grad(
            loss_of, argnums=(0, 1), has_aux=True
        )(trainable, zeros)
        if same:
            outputs, loss = aux, gradient_loss
        index = {id(variable): position for position, variable in enumerate(self.model.trainable_variables)}
        per_layer_weights = [
            [weight_grads[index[id(v)]] if id(v) in index else jax.numpy.zeros(v.shape) for _, v in entry.weights]
            for entry in self._reached
        ]
        return {
            "outputs": outputs,
            "gradients": gradient_reductions(per_layer_weights, [output_grads[entry.path] for entry in self._reached]),
            "loss": loss,
        }

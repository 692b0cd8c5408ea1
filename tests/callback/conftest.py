"""Fixtures for the callback tests: tiny real models and a reader of the events they write."""

from __future__ import annotations

import glob
import os
from typing import Callable

import numpy as np
import pytest


class Events:
    """All values logged under one ``log_dir/train``, read with TensorBoard's own reader."""

    def __init__(self, log_dir: str) -> None:
        from tensorboard.backend.event_processing import event_accumulator as ea
        from tensorboard.util import tensor_util

        self.files = sorted(glob.glob(os.path.join(log_dir, "train", "events.out.tfevents.*")))
        assert self.files, f"no event files under {log_dir}/train"
        self.values: dict[str, list[tuple[int, np.ndarray]]] = {}
        self.metadata: dict[str, object] = {}
        for path in self.files:
            acc = ea.EventAccumulator(path, size_guidance={ea.TENSORS: 0, ea.HISTOGRAMS: 0, ea.SCALARS: 0})
            acc.Reload()
            for tag in acc.Tags()["tensors"]:
                self.metadata[tag] = acc.SummaryMetadata(tag)
                self.values.setdefault(tag, []).extend(
                    (event.step, tensor_util.make_ndarray(event.tensor_proto)) for event in acc.Tensors(tag)
                )

    def last(self, tag: str) -> np.ndarray:
        return self.values[tag][-1][1]

    def steps(self, tag: str) -> list[int]:
        return [step for step, _ in self.values[tag]]

    def plugin(self, tag: str) -> str:
        return self.metadata[tag].plugin_data.plugin_name


@pytest.fixture(scope="session")
def read_events() -> Callable[[str], Events]:
    return Events


def random_draws(keras) -> list[np.ndarray]:
    """The next draws of every random stream a training run could have advanced."""
    draws = [
        keras.ops.convert_to_numpy(keras.random.uniform((3,))),  # Keras' global seed generator
        np.random.random(3),  # numpy's global stream
    ]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        draws.append(tf.random.uniform((3,)).numpy())  # TensorFlow's global stream
    elif keras.backend.backend() == "torch":
        import torch

        draws.append(torch.rand(3).numpy())  # PyTorch's global stream
    return draws


def autodiff_gradients(keras, model, loss_fn, x, y, variables, *, training: bool = False) -> list[np.ndarray]:
    """d loss_fn(y, model(x)) / d ``variables`` by the active backend's own autodiff; no state kept.

    ``tf.GradientTape``, ``jax.grad`` of ``model.stateless_call``, or ``torch.autograd.grad``.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape, keras.StatelessScope():
            loss = loss_fn(y, model(x, training=training))
        return [np.asarray(gradient) for gradient in tape.gradient(loss, variables)]
    if backend == "jax":
        import jax

        trainable, non_trainable = model.trainable_variables, [v.value for v in model.non_trainable_variables]

        def loss_of(values):
            outputs, _ = model.stateless_call(values, non_trainable, x, training=training)
            return loss_fn(y, outputs)

        gradients = jax.grad(loss_of)([v.value for v in trainable])
        position = {id(variable): index for index, variable in enumerate(trainable)}
        return [np.asarray(gradients[position[id(variable)]]) for variable in variables]
    import torch

    with keras.StatelessScope():
        loss = loss_fn(y, model(x, training=training))
    return [gradient.numpy() for gradient in torch.autograd.grad(loss, [variable.value for variable in variables])]


def assert_same_training(plain, probed, plain_draws, probed_draws) -> None:
    """Weights (BatchNorm's moving statistics included), optimizer slots, metrics and RNG draws are bit-identical."""
    assert len(plain.weights) == len(probed.weights)
    for a, b in zip(plain.weights, probed.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    for a, b in zip(plain.optimizer.variables, probed.optimizer.variables):
        assert np.array_equal(np.asarray(a), np.asarray(b)), a.path
    for a, b in zip(plain.metrics_variables, probed.metrics_variables):
        assert np.array_equal(np.asarray(a), np.asarray(b)), a.path
    for a, b in zip(plain_draws, probed_draws):
        assert np.array_equal(a, b)

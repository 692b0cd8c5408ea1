"""Every cell of the grid builds and takes a training step; data and dead-unit measurement."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from keras_relu_doctor.replay.data import LINEAR_BIAS, LINEAR_WEIGHTS, make_data
from keras_relu_doctor.replay.grid import build_grid
from keras_relu_doctor.replay.model import build_model, dead_fractions, hidden_layer_names


def test_data_is_negative_split_70_30_and_fixed_by_its_seed():
    data = make_data(1000, data_seed=3)
    assert data.x_train.shape == (700, 4) and data.x_val.shape == (300, 4)
    assert data.x_train.min() >= -1.0 and data.x_train.max() <= 0.0
    expected = data.x_val @ np.asarray(LINEAR_WEIGHTS, dtype="float32") + LINEAR_BIAS
    np.testing.assert_allclose(data.y_val[:, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(make_data(1000, data_seed=3).x_train, data.x_train)
    assert data.baseline_val_loss == pytest.approx(np.var(data.y_val), rel=0.05)


def test_random_labels_are_0_1_and_their_baseline_is_chance():
    data = make_data(2000, target="random-labels")
    assert set(np.unique(data.y_train)) == {0.0, 1.0}
    assert data.baseline_val_loss == pytest.approx(np.log(2), abs=0.01)


@pytest.mark.slow
def test_every_cell_of_the_grid_builds_and_trains_a_step():
    import keras

    for target in ("linear", "random-labels"):
        data = make_data(64, target=target)
        specs = build_grid("quick", seeds=1, target=target)
        for spec in specs if target == "linear" else specs[:2]:
            keras.utils.set_random_seed(0)
            model = build_model(spec)
            names = [layer.name for layer in model.layers if layer.name.startswith("dense_") and "dropout" not in layer.name]
            article = spec.head == "article"  # the output unit is one of the depth's layers
            assert names == hidden_layer_names(spec.depth - article), spec.setting
            assert (model.get_layer("output").activation.__name__ == spec.activation) == article, spec.setting
            before = [weight.numpy().copy() for weight in model.trainable_weights]
            model.run_eagerly = True  # one step: tracing each of the 68 models would dominate
            loss = model.train_on_batch(data.x_train[:32], data.y_train[:32])
            assert np.isfinite(loss), spec.setting
            if not article:  # a ReLU output unit dead from the start (small or negative weights) learns nothing
                assert any(not np.array_equal(old, new.numpy()) for old, new in zip(before, model.trainable_weights))


@pytest.mark.slow
def test_negative_init_kills_layers_behind_the_first_at_once():
    import keras

    keras.utils.set_random_seed(0)
    spec = replace(build_grid("quick", only="relu-negative-d3", seeds=1)[0])
    model = build_model(spec)
    x_probe, _ = make_data(600).probe(128)
    # Layer 1: negative inputs x negative weights > 0, alive; layers 2-3: positive x negative < 0.
    assert dead_fractions(model, x_probe) == {"dense_1": 0.0, "dense_2": 1.0, "dense_3": 1.0}

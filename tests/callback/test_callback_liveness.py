"""What the callback measures: dead, near-dead, healthy, gradients, steps, live warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from keras_relu_doctor import tags

from .conftest import autodiff_gradients


def _fit(keras, model, x, y, log_dir, epochs=2, batch_size=32, **callback_kwargs):
    from keras_relu_doctor import ReluDoctor

    callback = ReluDoctor(str(log_dir), probe_data=(x, y), **callback_kwargs)
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback])
    return callback, history


@pytest.fixture(scope="session")
def dead_run(keras_mod, regression_data, tmp_path_factory, read_events):
    keras = keras_mod
    keras.utils.set_random_seed(1)
    x, y = regression_data
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", bias_initializer=keras.initializers.Constant(-10.0), name="dying"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    log_dir = tmp_path_factory.mktemp("dead")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback, _ = _fit(keras, model, x, y, log_dir, epochs=3)
    return callback, read_events(str(log_dir)), caught


def test_biased_relu_layer_is_fully_dead(dead_run):
    callback, events, _ = dead_run
    # Step 0 is the baseline before any update, then one step per epoch done.
    assert events.steps(tags.tag("dying", tags.DEAD_FRACTION)) == [0, 1, 2, 3]
    assert float(events.last(tags.tag("dying", tags.DEAD_FRACTION))) == 1.0
    assert float(events.last(tags.tag("dying", tags.NEAR_DEAD_FRACTION))) == 0.0
    assert float(events.last(tags.tag("dying", tags.ZERO_FRACTION))) == 1.0
    units = events.last(tags.tag("dying", tags.UNITS))
    assert units.shape == (3, 8)  # active fraction, max |output|, output range
    np.testing.assert_array_equal(units, np.zeros((3, 8)))
    # Dead units pass no gradient back: the kernel gradient is exactly zero.
    assert float(events.last(tags.tag("dying", tags.GRAD_NORM))) == 0.0
    assert callback.layer_paths == ["dying", "head"]


def test_dead_layer_warns_once_naming_layer_fraction_and_epoch(dead_run):
    _, _, caught = dead_run
    messages = [str(w.message) for w in caught if "dead units" in str(w.message)]
    # The linear head outputs exact zeros too (its input is all zeros), but only
    # a rectifier can die.
    assert messages == [
        "ReluDoctor: layer 'dying' has 100% dead units at initialisation (before the first update) "
        "(threshold 50%); run `relu-doctor report` for fixes."
    ]


def test_units_record_is_marked_with_our_plugin_and_metadata(dead_run):
    _, events, _ = dead_run
    unit_tag = tags.tag("dying", tags.UNITS)
    assert events.plugin(unit_tag) == tags.PLUGIN_NAME
    meta = tags.UnitsMetadata.from_bytes(events.metadata[unit_tag].plugin_data.content)
    assert meta.tolerance == 1e-6 and meta.step_unit == tags.STEP_EPOCH and meta.activation == "relu"
    assert meta.layer_class == "Dense"
    assert events.plugin(tags.tag("dying", tags.ACTIVATIONS)) == tags.HISTOGRAMS_PLUGIN
    assert events.plugin(tags.tag("dying", tags.DEAD_FRACTION)) == tags.SCALARS_PLUGIN


def test_healthy_relu_layer_is_sparse_not_dead(keras_mod, tmp_path, read_events):
    keras = keras_mod
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(512, 16)).astype("float32")
    y = x[:, :1] * 0.5
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(64, activation="relu", kernel_initializer="he_normal", name="hidden"),
         keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    _fit(keras, model, x, y, tmp_path, epochs=1)
    events = read_events(str(tmp_path))
    assert float(events.last(tags.tag("hidden", tags.DEAD_FRACTION))) <= 1 / 64
    assert 0.4 < float(events.last(tags.tag("hidden", tags.ZERO_FRACTION))) < 0.6
    activity = events.last(tags.tag("hidden", tags.UNITS))[0]
    assert 0.3 < activity.mean() < 0.7


@pytest.mark.parametrize("activation_layer", ["prelu", "leaky_relu"])
def test_tiny_negative_outputs_are_near_dead_not_dead(keras_mod, regression_data, tmp_path, read_events, activation_layer):
    keras = keras_mod
    keras.utils.set_random_seed(3)
    x, y = regression_data
    if activation_layer == "prelu":
        act = keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(1e-9), name="act")
    else:
        act = keras.layers.LeakyReLU(negative_slope=1e-9, name="act")
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(-100.0),
                               name="pre"),
            act,
            keras.layers.Dense(1),
        ]
    )
    # A zero learning rate keeps the ~1e-7 outputs where the article saw them.
    model.compile(keras.optimizers.SGD(0.0), "mse")
    _fit(keras, model, x, y, tmp_path, epochs=1)
    events = read_events(str(tmp_path))
    assert float(events.last(tags.tag("act", tags.NEAR_DEAD_FRACTION))) == 1.0
    assert float(events.last(tags.tag("act", tags.DEAD_FRACTION))) == 0.0
    max_abs = events.last(tags.tag("act", tags.UNITS))[1]
    assert np.all((max_abs > 0) & (max_abs < 1e-6))
    # The activation layer's input is the Dense layer's output, logged once, there.
    assert tags.tag("act", tags.PREACTIVATIONS) not in events.values
    assert tags.tag("pre", tags.ACTIVATIONS) in events.values


def test_logged_gradients_equal_the_backends_own_autodiff(keras_mod, regression_data, tmp_path, read_events):
    keras = keras_mod
    keras.utils.set_random_seed(4)
    x, y = regression_data
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu", name="d1"), keras.layers.Dense(1, name="d2")]
    )
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    callback, _ = _fit(keras, model, x, y, tmp_path, epochs=1)
    events = read_events(str(tmp_path))
    # Gradients on the first gradient_samples probe samples (one training batch); the loss on all of them.
    taken = callback.gradient_samples
    assert 0 < taken < len(x)
    layer = model.get_layer("d1")
    kernel_grad, bias_grad = autodiff_gradients(
        keras, model, keras.losses.MeanSquaredError(), x[:taken], y[:taken], [layer.kernel, layer.bias]
    )
    expected_norm = np.sqrt(np.sum(kernel_grad**2) + np.sum(bias_grad**2))
    np.testing.assert_allclose(float(events.last(tags.tag("d1", tags.GRAD_NORM))), expected_norm, rtol=1e-5)
    whole = keras.losses.MeanSquaredError()(y, model(x, training=False))
    np.testing.assert_allclose(float(events.last(tags.PROBE_LOSS)), float(whole), rtol=1e-6)
    histogram = events.last(tags.gradient_tag("d1", "kernel"))  # [buckets, (left, right, count)]
    assert histogram[:, 2].sum() == kernel_grad.size
    np.testing.assert_allclose(histogram[0, 0], kernel_grad.min(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(histogram[-1, 1], kernel_grad.max(), rtol=1e-5, atol=1e-9)


def test_gradients_on_every_probe_sample_when_asked(keras_mod, regression_data, tmp_path, read_events):
    keras = keras_mod
    keras.utils.set_random_seed(4)
    x, y = regression_data
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="d1"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    _fit(keras, model, x, y, tmp_path, epochs=1, gradient_samples=None)
    layer = model.get_layer("d1")
    kernel_grad, bias_grad = autodiff_gradients(keras, model, keras.losses.MeanSquaredError(), x, y, [layer.kernel, layer.bias])
    expected_norm = np.sqrt(np.sum(kernel_grad**2) + np.sum(bias_grad**2))
    logged = float(read_events(str(tmp_path)).last(tags.tag("d1", tags.GRAD_NORM)))
    np.testing.assert_allclose(logged, expected_norm, rtol=1e-5)


def test_update_ratio_is_the_weights_relative_change_and_estimated_on_large_weights(
    keras_mod, regression_data, tmp_path, read_events
):
    keras = keras_mod
    keras.utils.set_random_seed(3)
    x, y = regression_data
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(128, activation="relu", name="small"),  # 640 values: kept whole
         keras.layers.Dense(128, activation="relu", name="large"),  # 16,512 values: a sample of 8,192
         keras.layers.Dense(1, name="head")]
    )  # fmt: skip
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    before = {name: [np.array(v) for v in model.get_layer(name).get_weights()] for name in ("small", "large")}
    _fit(keras, model, x, y, tmp_path, epochs=1, on_dead="ignore")
    events = read_events(str(tmp_path))
    for name, rtol in (("small", 1e-4), ("large", 0.05)):
        after = model.get_layer(name).get_weights()
        change = np.sqrt(sum(np.sum((a - b).astype(np.float64) ** 2) for a, b in zip(after, before[name])))
        expected = change / np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in after))
        assert events.steps(tags.tag(name, tags.UPDATE_RATIO)) == [1]
        np.testing.assert_allclose(float(events.last(tags.tag(name, tags.UPDATE_RATIO))), expected, rtol=rtol)
        weight_norm = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in after))
        np.testing.assert_allclose(float(events.last(tags.tag(name, tags.WEIGHT_NORM))), weight_norm, rtol=1e-5)


def test_update_ratio_sees_every_unit_of_a_large_weight(keras_mod, tmp_path, read_events):
    # Only the third of three output columns learns; every third value of the kernel changes.
    # A sample strided every 1.5 values would fall in columns 0 and 1 only, and read 0.
    keras = keras_mod
    keras.utils.set_random_seed(4)
    x = np.random.default_rng(4).normal(size=(256, 4096)).astype("float32")
    y = np.zeros((256, 3), "float32")
    y[:, 2] = x[:, :8].sum(axis=1)
    model = keras.Sequential([keras.Input((4096,)), keras.layers.Dense(3, use_bias=False, name="head")])
    model.compile(keras.optimizers.SGD(1e-3), lambda y_true, y_pred: keras.ops.mean((y_true[:, 2] - y_pred[:, 2]) ** 2))
    before = model.get_layer("head").get_weights()[0].copy()
    _fit(keras, model, x, y, tmp_path, epochs=1, on_dead="ignore")
    after = model.get_layer("head").get_weights()[0]
    assert np.array_equal(after[:, :2], before[:, :2]) and not np.array_equal(after[:, 2], before[:, 2])
    expected = np.linalg.norm((after - before).astype(np.float64)) / np.linalg.norm(after.astype(np.float64))
    logged = float(read_events(str(tmp_path)).last(tags.tag("head", tags.UPDATE_RATIO)))
    np.testing.assert_allclose(logged, expected, rtol=0.1)


def test_update_freq_in_batches_logs_at_global_batch_steps(keras_mod, regression_data, tmp_path, read_events):
    keras = keras_mod
    x, y = regression_data  # 256 samples / 32 = 8 batches per epoch
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu", name="d")])
    model.compile("sgd", "mse")
    _fit(keras, model, x, y[:, :1].repeat(4, 1), tmp_path, epochs=2, update_freq=3)
    events = read_events(str(tmp_path))
    assert events.steps(tags.tag("d", tags.DEAD_FRACTION)) == [0, 3, 6, 9, 12, 15]
    meta = tags.UnitsMetadata.from_bytes(events.metadata[tags.tag("d", tags.UNITS)].plugin_data.content)
    assert meta.step_unit == tags.STEP_BATCH
    # No update ratio at the baseline: nothing was updated yet.
    assert events.steps(tags.tag("d", tags.UPDATE_RATIO)) == [3, 6, 9, 12, 15]
    ratios = [float(v) for _, v in events.values[tags.tag("d", tags.UPDATE_RATIO)]]
    assert all(r > 0 for r in ratios)


def test_on_dead_stop_ends_training_after_the_first_dead_epoch(keras_mod, regression_data, tmp_path):
    keras = keras_mod
    x, y = regression_data
    model = keras.Sequential(
        [keras.Input((4,)),
         keras.layers.Dense(8, activation="relu", bias_initializer=keras.initializers.Constant(-10.0)),
         keras.layers.Dense(1)]
    )
    model.compile("adam", "mse")
    with pytest.warns(UserWarning, match="stopping training"):
        _, history = _fit(keras, model, x, y, tmp_path, epochs=5, on_dead="stop")
    assert len(history.history["loss"]) == 1


def test_nonfinite_values_are_counted_warned_once_and_do_not_crash(keras_mod, regression_data, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    probe_x = x[:64].copy()
    probe_x[0, 0] = np.nan
    probe_x[1, 1] = np.inf
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu", name="d"), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=2, verbose=0, callbacks=[ReluDoctor(str(tmp_path), probe_data=(probe_x, y[:64]))])
    nan_warnings = [w for w in caught if "NaN/Inf" in str(w.message)]
    assert len(nan_warnings) == 1
    events = read_events(str(tmp_path))
    nonfinite = float(events.last(tags.tag("d", tags.NONFINITE_ACTIVATIONS)))
    assert nonfinite >= 4  # at least the NaN sample's four units
    assert float(events.last(tags.tag("d", tags.NONFINITE_GRADIENTS))) > 0
    # Histograms keep the finite values only.
    assert events.last(tags.tag("d", tags.ACTIVATIONS))[:, 2].sum() == 64 * 4 - nonfinite


def test_nan_outputs_are_not_counted_as_dead_units(keras_mod, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x = np.ones((32, 2), "float32")
    x[0, 0] = np.nan  # sample 0 drives every unit to NaN
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="relu", kernel_initializer="ones",
                                                                    bias_initializer=keras.initializers.Constant(-100.0),
                                                                    name="d")])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    with pytest.warns(UserWarning, match="NaN/Inf"):
        model.fit(x[1:], np.zeros((31, 3), "float32"), epochs=1, verbose=0,
                  callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, np.zeros((32, 3), "float32")), on_dead="ignore")])
    events = read_events(str(tmp_path))
    assert float(events.last(tags.tag("d", tags.DEAD_FRACTION))) == 0.0
    assert np.all(np.isinf(events.last(tags.tag("d", tags.UNITS))[1]))

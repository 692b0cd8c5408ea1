"""Which models and inputs the callback handles, and that it never changes training."""

from __future__ import annotations

import numpy as np
import pytest

from keras_relu_doctor import tags

from .conftest import assert_same_training, random_draws


def _train(keras, build, x, y, *, callbacks, seed=7, epochs=2, batch_size=16):
    keras.utils.set_random_seed(seed)
    model = build()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks)
    return model


def test_training_is_bit_identical_with_and_without_the_callback(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data

    def build():
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.BatchNormalization(),
                keras.layers.Dropout(0.3),
                keras.layers.Dense(8),
                keras.layers.LeakyReLU(),
                keras.layers.Dense(1),
            ]
        )
        model.compile(keras.optimizers.Adam(1e-2), "mse", metrics=["mae"])
        return model

    plain = _train(keras, build, x, y, callbacks=[])
    plain_draws = random_draws(keras)
    # Training-mode probe: BatchNorm on batch statistics, whose updates must be discarded.
    probed = _train(keras, build, x, y, callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, y), update_freq=3)])
    assert_same_training(plain, probed, plain_draws, random_draws(keras))


def test_probing_leaves_batchnorm_statistics_unchanged(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.BatchNormalization(name="bn"),
                              keras.layers.ReLU(), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    callback = ReluDoctor(str(tmp_path), probe_data=(x * 50.0, y))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    bn = model.get_layer("bn")
    before = [v.numpy().copy() for v in bn.non_trainable_weights]
    callback.on_train_begin()
    callback.on_epoch_end(1)  # a probe on inputs 50x larger than training's
    callback.on_train_end()
    for old, new in zip(before, bn.non_trainable_weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_conv2d_channels_are_units_and_a_dead_channel_is_found(keras_mod, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 8, 8, 1)).astype("float32")
    y = x.mean(axis=(1, 2))
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
         keras.layers.MaxPooling2D(name="pool"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)]
    )
    conv = model.get_layer("conv")
    conv.bias.assign(np.array([-100.0, 0.5, 0.5, 0.5], dtype="float32"))
    conv.kernel.assign(np.abs(conv.kernel.numpy()) * 0.1)
    model.compile(keras.optimizers.SGD(1e-4), "mse")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, y))])
    events = read_events(str(tmp_path))
    units = events.last(tags.tag("conv", tags.UNITS))
    assert units.shape == (3, 4)
    assert units[1, 0] == 0.0 and np.all(units[1, 1:] > 0)
    assert float(events.last(tags.tag("conv", tags.DEAD_FRACTION))) == 0.25
    assert events.last(tags.tag("pool", tags.UNITS)).shape == (3, 4)
    assert tags.tag("conv", tags.PREACTIVATIONS) in events.values


def test_nested_multi_output_model_with_tf_data_probe(keras_mod, tmp_path, read_events):
    import tensorflow as tf

    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, 6)).astype("float32")
    targets = {"reg": x[:, :1] * 2.0, "cls": (x[:, 1:2] > 0).astype("float32")}
    trunk = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="inner")], name="trunk")
    inputs = keras.Input((6,))
    features = trunk(inputs)
    model = keras.Model(
        inputs,
        {"reg": keras.layers.Dense(1, name="reg")(features),
         "cls": keras.layers.Dense(1, activation="sigmoid", name="cls")(features)},
    )
    model.compile("adam", loss={"reg": "mse", "cls": "binary_crossentropy"})
    dataset = tf.data.Dataset.from_tensor_slices((x, targets)).batch(32)
    callback = ReluDoctor(str(tmp_path), probe_data=dataset, probe_size=40)
    model.fit(dataset, epochs=1, verbose=0, callbacks=[callback])
    assert sorted(callback.layer_paths) == ["cls", "reg", "trunk/inner"]
    events = read_events(str(tmp_path))
    for path in callback.layer_paths:
        assert float(events.last(tags.tag(path, tags.GRAD_NORM))) > 0, path
    # Forty samples, taken across two batches of the dataset.
    activity = events.last(tags.tag("trunk/inner", tags.UNITS))[0]
    assert np.allclose(activity * 40, np.round(activity * 40), atol=1e-4)
    assert tags.tag("cls", tags.PREACTIVATIONS) in events.values


def test_subclassed_model_calling_layers_is_measured(keras_mod, regression_data, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod

    class TwoLayers(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu", name="hidden")
            self.out = keras.layers.Dense(1, name="out")

        def call(self, inputs):
            return self.out(self.hidden(inputs))

    x, y = regression_data
    model = TwoLayers()
    model.compile("sgd", "mse")
    callback = ReluDoctor(str(tmp_path), probe_data=(x, y))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert callback.layer_paths == ["hidden", "out"]
    assert tags.tag("hidden", tags.UNITS) in read_events(str(tmp_path)).values


def test_subclassed_model_without_layers_gets_a_clear_error(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.errors import UnsupportedModel

    keras = keras_mod

    class RawWeights(keras.Model):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 1), initializer="ones")

        def call(self, inputs):
            return keras.ops.relu(keras.ops.matmul(inputs, self.w))

    x, y = regression_data
    model = RawWeights()
    model.compile("sgd", "mse")
    with pytest.raises(UnsupportedModel, match="found no layer to measure in RawWeights.*Wrap the computation"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, y))])


def test_validation_data_of_fit_is_the_default_probe(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    callback = ReluDoctor(str(tmp_path), probe_size=50)
    model.fit(x, y, validation_data=(x[200:], y[200:]), epochs=1, verbose=0, callbacks=[callback])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(callback._probe_batch[0]), x[200:250])
    split = ReluDoctor(str(tmp_path))
    model.fit(x, y, validation_split=0.25, epochs=1, verbose=0, callbacks=[split])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(split._probe_batch[0]), x[192:])
    with pytest.raises(ValueError, match=r"pass `probe_data`, e\.g\. ReluDoctor\(log_dir, probe_data="):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ReluDoctor(str(tmp_path))])


def test_probe_that_does_not_fit_the_model_fails_at_train_begin(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    wrong = (np.zeros((8, 7), "float32"), np.zeros((8, 1), "float32"))
    with pytest.raises(ValueError, match=r"`probe_data` does not fit the model .*probe x: \(8, 7\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ReluDoctor(str(tmp_path), probe_data=wrong)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_dead": "explode"}, r"`on_dead` must be one of \('warn', 'stop', 'ignore'\), got on_dead='explode'"),
        ({"tolerance": -1.0}, r"`tolerance` must be a finite number >= 0, got tolerance=-1.0"),
        ({"update_freq": 0}, r"`update_freq` must be 'epoch' or a positive integer"),
        ({"update_freq": "batch"}, r"`update_freq` must be 'epoch' or a positive integer"),
        ({"dead_threshold": 1.5}, r"`dead_threshold` must be a share between 0 and 1"),
        ({"probe_size": 0}, r"`probe_size` must be None or a positive integer"),
        ({"gradient_samples": 2.5}, r"`gradient_samples` must be None or a positive integer"),
        ({"probe_data": np.zeros((4, 4))}, r"`probe_data` must be a tuple \(x, y\)"),
        ({"probe_data": (np.zeros((4, 4)), None)}, r"`probe_data` needs targets y"),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs, message):
    from keras_relu_doctor import ReluDoctor

    with pytest.raises(ValueError, match=message):
        ReluDoctor("logs", **kwargs)


def test_multi_input_model_with_conv1d_and_dict_probe(keras_mod, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    series = rng.normal(size=(64, 12, 2)).astype("float32")
    scalars = rng.normal(size=(64, 3)).astype("float32")
    y = (series.mean(axis=(1, 2)) + scalars.sum(axis=1))[:, None]
    series_in = keras.Input((12, 2), name="series")
    scalars_in = keras.Input((3,), name="scalars")
    conv = keras.layers.Conv1D(5, 3, activation="relu", name="conv1d")(series_in)
    pooled = keras.layers.GlobalMaxPooling1D(name="pool")(conv)
    merged = keras.layers.Concatenate()([pooled, keras.layers.Dense(4, activation="relu", name="side")(scalars_in)])
    model = keras.Model({"series": series_in, "scalars": scalars_in}, keras.layers.Dense(1, name="head")(merged))
    model.compile("adam", "mse")
    inputs = {"series": series, "scalars": scalars}
    callback = ReluDoctor(str(tmp_path), probe_data=(inputs, y), probe_size=32)
    model.fit(inputs, y, epochs=1, verbose=0, callbacks=[callback])
    assert sorted(callback.layer_paths) == ["conv1d", "head", "pool", "side"]
    events = read_events(str(tmp_path))
    assert events.last(tags.tag("conv1d", tags.UNITS)).shape == (3, 5)  # channels are the units
    assert events.last(tags.tag("side", tags.UNITS)).shape == (3, 4)
    assert events.last(tags.tag("conv1d", tags.ACTIVATIONS))[:, 2].sum() == 32 * 10 * 5


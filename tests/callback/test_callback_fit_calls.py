"""Every way people call fit: twice, resumed, endless datasets, PyDataset and generators,
custom train steps, mixed precision, and a backend the callback does not run on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from keras_relu_doctor import tags


def _relu_model(keras, *, units=8):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(units, activation="relu", name="hidden"), keras.layers.Dense(1, name="head")]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    return model


def test_fit_twice_continues_the_steps_and_keeps_both_fits(keras_mod, regression_data, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor, read_logdir

    keras = keras_mod
    x, y = regression_data
    model = _relu_model(keras)
    callback = ReluDoctor(str(tmp_path), probe_data=(x, y))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    first_weight_norms = read_events(str(tmp_path)).values[tags.tag("hidden", tags.WEIGHT_NORM)]
    model.fit(x, y, epochs=3, verbose=0, callbacks=[callback])
    events = read_events(str(tmp_path))
    assert events.steps(tags.tag("hidden", tags.DEAD_FRACTION)) == [0, 1, 2, 3, 4, 5]
    # The first fit's values are kept as written.
    kept = events.values[tags.tag("hidden", tags.WEIGHT_NORM)][:3]
    assert [step for step, _ in kept] == [step for step, _ in first_weight_norms]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(kept, first_weight_norms))
    run = read_logdir(tmp_path).run("train")
    assert [(step, facts["probe"]["fit"]) for step, facts in run.facts] == [(0, 1), (2, 2)]
    assert run.units["hidden"].steps.tolist() == [0, 1, 2, 3, 4, 5]


def test_initial_epoch_and_batch_steps_follow_the_optimizer(keras_mod, regression_data, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data  # 8 batches of 32 per epoch
    model = _relu_model(keras)
    model.fit(x, y, epochs=4, initial_epoch=2, verbose=0,
              callbacks=[ReluDoctor(str(tmp_path / "resumed"), probe_data=(x, y))])  # fmt: skip
    assert read_events(str(tmp_path / "resumed")).steps(tags.tag("hidden", tags.UNITS)) == [2, 3, 4]
    callback = ReluDoctor(str(tmp_path / "batches"), probe_data=(x, y), update_freq=4)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    # The optimizer had made 16 updates: the baseline of this fit is step 16.
    assert read_events(str(tmp_path / "batches")).steps(tags.tag("hidden", tags.UNITS)) == [16, 20, 24]


def test_endless_dataset_with_steps_per_epoch(keras_mod, regression_data, tmp_path, read_events):
    import tensorflow as tf

    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    endless = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
    model = _relu_model(keras)
    model.fit(endless, steps_per_epoch=3, epochs=2, verbose=0,
              callbacks=[ReluDoctor(str(tmp_path), probe_data=endless, probe_size=64)])  # fmt: skip
    events = read_events(str(tmp_path))
    assert events.steps(tags.tag("hidden", tags.UNITS)) == [0, 1, 2]
    assert events.last(tags.tag("hidden", tags.ACTIVATIONS))[:, 2].sum() == 64 * 8


class _Batches:
    """A keras.utils.PyDataset of (x, y) batches."""

    @staticmethod
    def make(keras, x, y, batch_size=32):
        class Batches(keras.utils.PyDataset):
            def __len__(self):
                return int(np.ceil(len(x) / batch_size))

            def __getitem__(self, index):
                part = slice(index * batch_size, (index + 1) * batch_size)
                return x[part], y[part]

        return Batches()


def test_pydataset_as_validation_data_is_the_probe(keras_mod, regression_data, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    model = _relu_model(keras)
    callback = ReluDoctor(str(tmp_path), probe_size=100)
    model.fit(x, y, epochs=1, verbose=0, validation_data=_Batches.make(keras, x, y), callbacks=[callback])
    # 100 probe samples taken from the first 4 batches of 32.
    assert read_events(str(tmp_path)).last(tags.tag("hidden", tags.ACTIVATIONS))[:, 2].sum() == 100 * 8


def test_generator_as_validation_data_gets_an_error_naming_it(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    model = _relu_model(keras)

    def batches():
        while True:
            yield x[:32], y[:32]

    with pytest.raises(ValueError, match=r"generator passed as `validation_data`.*probe_data="):
        model.fit(x, y, epochs=1, verbose=0, validation_data=batches(), validation_steps=1,
                  callbacks=[ReluDoctor(str(tmp_path))])  # fmt: skip
    with pytest.raises(ValueError, match="generator passed as `probe_data`"):
        ReluDoctor(str(tmp_path), probe_data=batches())


def _custom_step_model(keras):
    import tensorflow as tf

    class OwnStep(keras.Model):
        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = keras.ops.mean((self(x, training=True) - y) ** 2)
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return {"loss": loss}

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    model = OwnStep(inputs, keras.layers.Dense(1, name="head")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))  # no loss: the train step has its own
    return model


# A custom train_step is written per backend (JAX's is stateless): these two use TensorFlow's;
# test_model_without_a_loss_logs_liveness_and_no_gradients covers the probe without a loss everywhere.
@pytest.mark.tensorflow_only
def test_custom_train_step_without_compiled_loss_logs_no_gradients_and_says_so(
    keras_mod, regression_data, tmp_path, read_events
):
    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.report import build_report

    keras = keras_mod
    x, y = regression_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _custom_step_model(keras).fit(x, y, epochs=2, verbose=0,
                                      callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, y))])  # fmt: skip
    assert any("gradients not logged" in str(w.message) for w in caught)
    events = read_events(str(tmp_path))
    assert not [tag for tag in events.values if "/gradients/" in tag or tag.endswith("grad_norm")]
    assert tags.tag("hidden", tags.DEAD_FRACTION) in events.values
    run = build_report(tmp_path).run("train")
    assert run.gradients_note.startswith("not logged: the model was compiled without a loss")
    assert "vanishing_gradients" not in run.problems and run.gradient_status == "unknown"


@pytest.mark.tensorflow_only
def test_custom_train_step_with_a_loss_given_to_the_callback(keras_mod, regression_data, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    _custom_step_model(keras).fit(x, y, epochs=1, verbose=0,
                                  callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, y), loss="mse")])  # fmt: skip
    events = read_events(str(tmp_path))
    assert float(events.last(tags.tag("hidden", tags.GRAD_NORM))) > 0.0
    assert float(events.last(tags.PROBE_LOSS)) > 0.0


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("threshold, collected", [(0, True), (10**9, False)])
def test_a_large_probe_graph_is_collected_when_training_ends(
    keras_mod, regression_data, tmp_path, monkeypatch, threshold, collected
):
    import gc
    import weakref

    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.probe import tf_probe

    keras = keras_mod
    x, y = regression_data
    monkeypatch.setattr(tf_probe, "COLLECT_ABOVE_OPERATIONS", threshold)
    graphs = []

    class Watched(ReluDoctor):
        def on_train_end(self, logs=None):
            graphs.append(weakref.ref(self._probe.function.get_concrete_function(*self._probe_batch).graph))
            super().on_train_end(logs)

    gc.disable()  # only the probe's own collection may free the graph's reference cycle
    try:
        _relu_model(keras).fit(x, y, epochs=1, verbose=0, callbacks=[Watched(str(tmp_path), probe_data=(x, y))])
        assert (graphs[0]() is None) == collected
    finally:
        gc.enable()


def test_model_without_a_loss_logs_liveness_and_no_gradients(keras_mod, regression_data, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    x, y = regression_data
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden")])
    model.compile(optimizer="adam")  # no loss: a custom train_step would bring its own
    model(x[:1])
    callback = ReluDoctor(str(tmp_path), probe_data=(x, y))
    callback.set_model(model)
    with pytest.warns(UserWarning, match="gradients not logged"):
        callback.on_train_begin()
    callback.on_epoch_end(0)
    callback.on_train_end()
    events = read_events(str(tmp_path))
    assert events.steps(tags.tag("hidden", tags.DEAD_FRACTION)) == [0, 1]
    assert not [tag for tag in events.values if "/gradients/" in tag or tag.endswith("grad_norm")]
    assert tags.PROBE_LOSS not in events.values


def test_mixed_precision_conv_net_with_batchnorm(keras_mod, tmp_path, read_events):
    from keras_relu_doctor import ReluDoctor

    keras = keras_mod
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, 32)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, padding="same", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dense(4, name="logits"),
            keras.layers.Activation("softmax", dtype="float32", name="probs"),
        ])  # fmt: skip
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        callback = ReluDoctor(str(tmp_path), probe_data=(x, y))
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    finally:
        keras.config.set_dtype_policy("float32")
    events = read_events(str(tmp_path))
    assert float(events.last(tags.tag("relu", tags.DEAD_FRACTION))) == 0.0
    assert 0.3 < float(events.last(tags.tag("relu", tags.ZERO_FRACTION))) < 0.7  # batch statistics centre it
    assert float(events.last(tags.tag("conv", tags.GRAD_NORM))) > 0.0
    assert float(events.last(tags.tag("conv", tags.NONFINITE_GRADIENTS))) == 0.0


def test_other_backends_get_one_clear_line(monkeypatch, tmp_path):
    import keras

    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.errors import UnsupportedModel

    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(UnsupportedModel, match=r"tensorflow, jax, torch backends; this Keras runs on 'numpy'.*KERAS_BACKEND=tensorflow, jax or torch"):
        ReluDoctor(str(tmp_path))


def test_default_probe_size_follows_the_cost_of_the_model(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.callback import PROBE_VALUES_BUDGET

    keras = keras_mod
    rng = np.random.default_rng(0)
    images = rng.normal(size=(600, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, 600)
    keras.utils.set_random_seed(0)
    convs = [keras.layers.Conv2D(64, 3, padding="same", activation="relu") for _ in range(4)]
    model = keras.Sequential([keras.Input((32, 32, 3)), *convs, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    model.compile("adam", "sparse_categorical_crossentropy")
    callback = ReluDoctor(str(tmp_path / "cnn"), probe_data=(images, labels))
    model.fit(images[:32], labels[:32], epochs=1, verbose=0, callbacks=[callback])
    per_sample = 4 * 32 * 32 * 64 + 64 + 10  # the measured layers' output values for one image
    assert callback._probe_batch[0].shape[0] == PROBE_VALUES_BUDGET // per_sample // 8 * 8 == 120
    # A small model keeps up to 512 samples: here all 256 it was given.
    x, y = regression_data
    mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    mlp.compile("adam", "mse")
    callback = ReluDoctor(str(tmp_path / "mlp"), probe_data=(x, y))
    mlp.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert callback._probe_batch[0].shape[0] == 256

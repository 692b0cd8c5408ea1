"""The callback on the networks people train: keras.applications with BatchNorm, recurrent and
attention models, Lambda and custom layers; what it measures agrees with plain Keras."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from keras_relu_doctor import tags

from .conftest import assert_same_training, autodiff_gradients

def _training_mode_outputs(keras, model, names, x):
    """Layer outputs with BatchNorm on batch statistics, written with plain Keras; no state kept."""
    outputs = keras.Model(model.input, [model.get_layer(name).output for name in names])
    with keras.StatelessScope():
        return [keras.ops.convert_to_numpy(value) for value in outputs(x, training=True)]


@pytest.mark.slow
def test_mobilenet_training_is_bit_identical_with_the_callback(mobilenet_runs):
    plain, plain_draws = mobilenet_runs["plain"]
    probed, probed_draws = mobilenet_runs["probed"]
    assert_same_training(plain, probed, plain_draws, probed_draws)


@pytest.mark.slow
def test_mobilenet_dead_shares_agree_with_a_training_mode_measurement(keras_mod, mobilenet_runs, read_events):
    keras = keras_mod
    model, _ = mobilenet_runs["probed"]
    x, _ = mobilenet_runs["probe"]
    events = read_events(str(mobilenet_runs["log_dir"]))
    relus = [layer.name for layer in model.layers if type(layer).__name__ == "ReLU"]
    assert len(relus) == 35
    for name, output in zip(relus, _training_mode_outputs(keras, model, relus, x)):
        expected = float(np.mean(np.abs(output).max(axis=(0, 1, 2)) == 0.0))
        logged = float(events.last(tags.tag(name, tags.DEAD_FRACTION)))
        assert abs(logged - expected) <= 0.02, (name, logged, expected)
    # And no layer is anywhere near dead: the inference-mode view of early BatchNorm is not measured.
    assert max(float(events.last(tags.tag(name, tags.DEAD_FRACTION))) for name in relus) < 0.5


@pytest.mark.slow
def test_mobilenet_stem_gradient_is_the_training_gradient_and_not_vanishing(keras_mod, mobilenet_runs, read_events):
    from keras_relu_doctor.report import build_report

    keras = keras_mod
    model, _ = mobilenet_runs["probed"]
    x, y = mobilenet_runs["probe"]
    stem = model.get_layer("Conv1")
    (kernel_grad,) = autodiff_gradients(
        keras, model, keras.losses.SparseCategoricalCrossentropy(), x, y, [stem.kernel], training=True
    )
    expected = float(np.sqrt(np.sum(kernel_grad.astype(np.float64) ** 2)))
    events = read_events(str(mobilenet_runs["log_dir"]))
    logged = float(events.last(tags.tag("Conv1", tags.GRAD_NORM)))
    np.testing.assert_allclose(logged, expected, rtol=1e-3)
    assert logged > 1e-3
    run = build_report(mobilenet_runs["log_dir"]).run("train")
    assert run.probe_mode == "training"
    assert "vanishing_gradients" not in run.problems and "dying_relu" not in run.problems
    assert run.layer("Conv1").grad_status == "ok"


@pytest.mark.slow
def test_mobilenet_model_facts_record_relu6_normalisation_and_merges(mobilenet_runs):
    from keras_relu_doctor.events import read_logdir

    run = read_logdir(mobilenet_runs["log_dir"]).run("train")
    assert [step for step, _ in run.facts] == [0]
    facts = run.model_facts
    layers = {layer["path"]: layer for layer in facts["layers"]}
    relu = layers["Conv1_relu"]
    assert relu["activation"] == "relu6" and relu["activation_params"]["max_value"] == 6.0
    assert relu["inputs"] == ["bn_Conv1"] and relu["normalized_before_activation"] is True
    assert all(layer["normalized_before_activation"] for layer in layers.values() if layer["class"] == "ReLU")
    assert layers["Conv1"]["initializers"]["kernel_initializer"]["class"] == "GlorotUniform"
    assert layers["Conv1"]["inputs"] == ["<input>"]
    merges = {merge["layer"]: merge["inputs"] for merge in facts["merges"]}
    assert merges["block_2_add"] == ["block_1_project_BN", "block_2_project_BN"]
    assert facts["outputs"] == [{"layer": "predictions", "activation": "softmax", "units": 10}]
    assert facts["optimizer"]["class"] == "Adam" and facts["optimizer"]["learning_rate"] == pytest.approx(1e-3)
    assert facts["loss"] == [{"name": "sparse_categorical_crossentropy", "from_logits": False}]
    assert facts["probe"]["mode"] == "training" and facts["probe"]["gradients"] is True
    # Every layer is accounted for: measured, or skipped for a reason that needs no attention.
    assert all(layer["measured"] or layer["reason"] in tags.QUIET_NOT_MEASURED_REASONS for layer in facts["layers"])
    # Pooling and BatchNorm outputs after a ReLU are never negative: still not rectifiers.
    assert all(layer["activation"] in ("", "linear") for layer in facts["layers"]
               if "Pooling" in layer["class"] or layer["class"] == "BatchNormalization")  # fmt: skip
    meta = run.units["Conv1_relu"].metadata
    assert meta.activation == "relu6" and meta.probe_mode == "training"
    np.testing.assert_allclose(run.scalars[tags.LEARNING_RATE].values, 1e-3)


def test_inference_mode_is_offered_and_recorded(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.report import build_report

    keras = keras_mod
    x, y = regression_data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.BatchNormalization(name="bn"),
                              keras.layers.ReLU(name="relu"), keras.layers.Dense(1)])  # fmt: skip
    model.compile("sgd", "mse")
    # Probe inputs far off the training scale: moving statistics leave the BatchNorm output
    # off-centre, so units whose kernel sums negative output 0 on every sample;
    # batch statistics centre each channel, so no unit is dead.
    probe = (x * 50.0 + 100.0, y)
    training = ReluDoctor(str(tmp_path / "training"), probe_data=probe, on_dead="ignore")
    inference = ReluDoctor(str(tmp_path / "inference"), probe_data=probe, probe_mode="inference", on_dead="ignore")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[training, inference])
    relu = training.layer_paths.index("relu")
    assert training.last_result["dead_fraction"][relu] == 0.0
    assert inference.last_result["dead_fraction"][relu] > 0.0
    for mode in ("training", "inference"):
        run = build_report(tmp_path / mode).run("train")
        assert run.probe_mode == mode
        assert run.layer("relu").dead_fraction == (0.0 if mode == "training" else pytest.approx(run.layer("relu").dead_fraction))
    with pytest.raises(ValueError, match="probe_mode"):
        ReluDoctor(str(tmp_path), probe_mode="eval")


def test_recurrent_layers_are_measured_whole_with_features_as_units(keras_mod, tmp_path):
    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.report import build_report

    keras = keras_mod
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 3)).astype("float32")
    y = rng.integers(0, 3, 64)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 3))
    hidden = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bi")(inputs)
    hidden = keras.layers.GRU(5, return_sequences=True, name="gru")(hidden)
    hidden, _ = keras.layers.SimpleRNN(3, return_state=True, name="rnn")(hidden)
    # A ConvLSTM over the same steps, seen as 6 steps of a 3-wide, 1-channel signal.
    grid = keras.layers.Reshape((6, 3, 1), name="as_grid")(inputs)
    conv = keras.layers.ConvLSTM1D(2, 2, name="convlstm")(grid)
    merged = keras.layers.Concatenate(name="join")([hidden, keras.layers.Flatten(name="flat")(conv)])
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(merged)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    callback = ReluDoctor(str(tmp_path), probe_data=(x, y))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert sorted(callback.layer_paths) == ["bi", "convlstm", "gru", "head", "rnn"]
    assert set(callback.not_measured) == {"as_grid", "join", "flat"}  # reshapes and a merge
    run = build_report(tmp_path).run("train")
    units = {"bi": 8, "gru": 5, "rnn": 3, "convlstm": 2, "head": 3}
    assert {layer.name: layer.units for layer in run.layers} == units
    assert {layer.name: layer.grad_status for layer in run.layers} == dict.fromkeys(units, "ok")
    assert run.not_measured == () and run.skipped_layers == 3
    from keras_relu_doctor import read_logdir

    facts = {layer["path"]: layer for layer in read_logdir(tmp_path).run("train").model_facts["layers"]}
    assert facts["bi"]["activation"] == "tanh"
    assert facts["bi"]["initializers"]["recurrent_initializer"]["class"] == "Orthogonal"


class _ShiftedRectifier:
    """A custom layer whose call uses keras.ops: max(x - shift, 0); no activation attribute."""

    @staticmethod
    def make(keras):
        class ShiftedRectifier(keras.layers.Layer):
            def __init__(self, shift, **kwargs):
                super().__init__(**kwargs)
                self.shift = shift

            def call(self, inputs):
                return keras.ops.maximum(inputs - self.shift, 0.0)

        return ShiftedRectifier


def test_lambda_and_custom_rectifiers_are_measured_and_recognised(keras_mod, regression_data, tmp_path):
    from keras_relu_doctor import ReluDoctor, read_logdir
    from keras_relu_doctor.report import build_report

    keras = keras_mod
    x, y = regression_data
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, name="dense"),
            keras.layers.Lambda(lambda t: keras.ops.relu(t), name="lambda_relu"),
            keras.layers.Dense(8, name="dense_2"),
            _ShiftedRectifier.make(keras)(1e3, name="custom_dead"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile("adam", "mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, y))])
    assert {layer["path"]: (layer["activation"], layer["activation_source"])
            for layer in read_logdir(tmp_path).run("train").model_facts["layers"]
            if layer["path"] in ("lambda_relu", "custom_dead")} == {
        "lambda_relu": ("relu", "function"), "custom_dead": ("relu", "output")}  # fmt: skip
    run = build_report(tmp_path).run("train")
    assert run.layer("custom_dead").dead_fraction == 1.0
    assert run.layer("lambda_relu").dead_fraction < 0.5
    assert any(f.kind == "dying_relu" and f.layer == "custom_dead" for f in run.findings)
    assert any("'custom_dead' has 100% dead units at initialisation" in str(w.message) for w in caught)


def test_transformer_block_measures_the_attention_softmax(keras_mod, tmp_path):
    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.report import build_report

    keras = keras_mod
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 30, (64, 8))
    y = rng.integers(0, 2, 64)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Embedding(30, 8, name="embed")(inputs)
    attended = keras.layers.MultiHeadAttention(2, 4, name="mha")(hidden, hidden)
    hidden = keras.layers.LayerNormalization(name="norm")(keras.layers.Add(name="residual")([hidden, attended]))
    hidden = keras.layers.Dense(16, activation="relu", name="ffn")(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(keras.layers.GlobalAveragePooling1D(name="pool")(hidden))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy")
    callback = ReluDoctor(str(tmp_path), probe_data=(tokens, y))
    model.fit(tokens, y, epochs=1, verbose=0, callbacks=[callback])
    softmax = next(path for path in callback.layer_paths if path.startswith("mha/softmax"))
    probabilities = callback.last_result  # the softmax histogram lies in [0, 1]
    assert probabilities["dead_fraction"].size == len(callback.layer_paths)
    run = build_report(tmp_path).run("train")
    assert {"embed", "mha/query", "mha/key", "mha/value", softmax, "mha/attention_output", "norm", "ffn", "head"} <= {
        layer.name for layer in run.layers
    }
    assert run.not_measured == ()
    assert run.skipped_layers >= 2  # the merge, and MultiHeadAttention itself through its sublayers


def test_fused_attention_softmax_is_listed_as_not_measured(keras_mod):
    from keras_relu_doctor.probe import walk_layers

    keras = keras_mod
    inputs = keras.Input((4, 8))
    attention = keras.layers.MultiHeadAttention(2, 4, name="mha")
    model = keras.Model(inputs, attention(inputs, inputs))
    attention._flash_attention = True  # what flash_attention=True sets (it needs a GPU kernel to run)
    entries = {entry.path: entry for entry in walk_layers(model)}
    softmax = next(entry for path, entry in entries.items() if path.startswith("mha/softmax"))
    assert not softmax.measured and softmax.reason == tags.REASON_FUSED_ATTENTION


def test_not_measured_layers_are_written_and_reported(keras_mod, regression_data, tmp_path):
    """A layer the forward pass never calls is named in the logdir and the report, not dropped."""
    from keras_relu_doctor import ReluDoctor
    from keras_relu_doctor.render.text_report import render_text
    from keras_relu_doctor.report import build_report

    keras = keras_mod
    x, y = regression_data

    class Skips(keras.Model):
        def __init__(self):
            super().__init__()
            self.used = keras.layers.Dense(4, activation="relu", name="used")
            self.unused = keras.layers.Dense(4, activation="relu", name="unused")
            self.head = keras.layers.Dense(1, name="head")

        def build(self, input_shape):
            self.unused.build(input_shape)

        def call(self, inputs):
            return self.head(self.used(inputs))

    keras.utils.set_random_seed(0)
    model = Skips()
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, y))])
    run = build_report(tmp_path).run("train")
    assert [(item.layer, item.reason) for item in run.not_measured] == [("unused", tags.REASON_NOT_REACHED)]
    text = " ".join(render_text(build_report(tmp_path), width=200).split())
    assert f"not measured: unused (Dense): {tags.REASON_NOT_REACHED}" in text


def test_only_rectifiers_warn_when_their_channels_die(keras_mod, tmp_path):
    """Pooling and BatchNorm after a dead ReLU are all zeros too, and never negative: no warning of their own."""
    from keras_relu_doctor import ReluDoctor, read_logdir

    keras = keras_mod
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, 64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same", name="conv"),
        keras.layers.BatchNormalization(beta_initializer=keras.initializers.Constant(-50.0), name="bn"),
        keras.layers.ReLU(name="relu"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.BatchNormalization(center=False, name="bn_after"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(4, activation="softmax", name="head"),
    ])  # fmt: skip
    model.compile("adam", "sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ReluDoctor(str(tmp_path), probe_data=(x, y))])
    warned = [str(w.message).split("'")[1] for w in caught if "dead units" in str(w.message)]
    assert warned == ["relu"]
    facts = {layer["path"]: layer for layer in read_logdir(tmp_path).run("train").model_facts["layers"]}
    assert facts["relu"]["activation"] == "relu"
    assert [facts[name]["activation"] for name in ("pool", "bn_after", "gap")] == ["", "", ""]

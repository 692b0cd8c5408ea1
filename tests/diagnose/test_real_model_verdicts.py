"""Verdicts a careful engineer would sign, on logdirs written by the callback from real models:
root causes with their consequences, verdicts by kind of layer, heads, chance, and fixes that
read the model."""

from __future__ import annotations

import numpy as np
import pytest

from keras_relu_doctor.diagnose.fixes import FIXES, KEY_OF_FIX
from keras_relu_doctor.report import build_report


def _fit(keras, model, x, y, logdir, *, epochs, loss, optimizer, batch_size=32):
    from keras_relu_doctor import ReluDoctor

    model.compile(optimizer, loss)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[
        keras.callbacks.TensorBoard(str(logdir)),
        ReluDoctor(str(logdir), probe_data=(x[:128], y[:128]), on_dead="ignore"),
    ])  # fmt: skip
    return build_report(logdir).run("train")


@pytest.fixture(scope="session")
def cascade_run(keras_mod, tmp_path_factory):
    """A small CNN whose first ReLU has 5 of 8 channels dead (BatchNorm beta -100): every later
    channel-wise layer (depthwise conv, BatchNorm, ReLU, pooling) carries the same channels dead."""
    keras = keras_mod
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8, 8, 3)).astype("float32")
    y = x.mean(axis=(1, 2, 3))[:, None]
    beta = np.zeros(8, dtype="float32")
    beta[:5] = -100.0
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv"),
        keras.layers.BatchNormalization(beta_initializer=keras.initializers.Constant(beta), name="conv_bn"),
        keras.layers.ReLU(name="conv_relu"),
        keras.layers.DepthwiseConv2D(3, padding="same", name="dw"),
        keras.layers.BatchNormalization(name="dw_bn"),
        keras.layers.ReLU(name="dw_relu"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(1, name="head"),
    ])  # fmt: skip
    return _fit(keras, model, x, y, tmp_path_factory.mktemp("cascade"), epochs=2, loss="mse",
                optimizer=keras.optimizers.Adam(1e-3))  # fmt: skip


def test_a_cascade_is_one_finding_on_the_layer_where_deaths_start(cascade_run):
    run = cascade_run
    dying = [finding for finding in run.findings if finding.kind == "dying_relu"]
    assert [(finding.layer, finding.severity) for finding in dying] == [("conv_relu", "warning")]
    root = dying[0]
    assert root.units == (0, 1, 2, 3, 4)
    assert root.evidence["dead_from_first_step"] is True
    # Downstream layers carry the five channels; none gets a finding of its own.
    assert root.evidence["consequences"] == {"dw": 5, "dw_bn": 5, "dw_relu": 5, "pool": 5, "gap": 5}
    assert run.layer("gap").dead_units == (0, 1, 2, 3, 4)
    assert root.summary.endswith("25 dead units downstream, in dw, dw_bn, dw_relu and 2 more, only carry these deaths")
    # Every ReLU follows BatchNorm: the report does not recommend adding it.
    assert FIXES["normalization"] not in root.fixes
    assert root.fixes[0] == FIXES["initializer"]


def test_a_layer_fed_by_a_wholly_dead_layer_inherits_its_deaths(keras_mod, tmp_path):
    """The article's head on its negative initializer: layer 2 dies at once, so the ReLU output,
    fed only zeros, is dead too; one finding, on layer 2, with the output as its consequence."""
    keras = keras_mod
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 0.0, size=(512, 4)).astype("float32")
    y = x @ np.array([[0.5], [-1.0], [1.5], [-2.0]], dtype="float32") + 0.25
    negative = keras.initializers.RandomUniform(-1.0, 0.0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,))] + [
        keras.layers.Dense(units, activation="relu", kernel_initializer=negative, name=name)
        for units, name in ((16, "first"), (16, "second"), (1, "out"))
    ])  # fmt: skip
    run = _fit(keras, model, x, y, tmp_path, epochs=2, loss="mse", optimizer=keras.optimizers.Adam(1e-3))
    dying = [finding for finding in run.findings if finding.kind == "dying_relu"]
    assert [finding.layer for finding in dying] == ["second"]
    assert dying[0].evidence["consequences"] == {"out": 1}
    assert run.layer("out").dead_units == (0,)


def test_non_rectifiers_are_never_dying(keras_mod, tmp_path):
    """Linear and normalisation layers whose outputs are merely tiny (or zero) are not dying units."""
    keras = keras_mod
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    keras.utils.set_random_seed(0)
    tiny = keras.initializers.RandomNormal(stddev=1e-9)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal", name="hidden"),
        keras.layers.Dense(16, kernel_initializer=tiny, trainable=False, name="linear_tiny"),
        keras.layers.BatchNormalization(center=False, scale=False, trainable=False, name="bn_frozen"),
        keras.layers.Dense(1, name="head"),
    ])  # fmt: skip
    run = _fit(keras, model, x, y, tmp_path, epochs=2, loss="mse", optimizer=keras.optimizers.Adam(1e-3))
    assert run.layer("linear_tiny").near_dead_units or run.layer("linear_tiny").dead_units  # tiny outputs
    assert not [finding for finding in run.findings if finding.kind == "dying_relu" and finding.layer == "linear_tiny"]
    assert "dying_relu" not in run.problems


def test_a_confident_sigmoid_head_is_not_saturation(keras_mod, tmp_path):
    keras = keras_mod
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype("float32")
    y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(32, activation="relu", name="hidden_1"),
        keras.layers.Dense(32, activation="relu", name="hidden_2"),
        keras.layers.Dense(1, activation="sigmoid", name="head"),
    ])  # fmt: skip
    run = _fit(keras, model, x, y, tmp_path, epochs=20, loss="binary_crossentropy",
               optimizer=keras.optimizers.Adam(1e-2))  # fmt: skip
    from keras_relu_doctor import read_logdir

    activations = read_logdir(tmp_path).run("train").histograms["head/activations"]
    # Most outputs are within 5% of 0 or 1: confident, as a good classifier is.
    assert activations.fraction_below_0_05[-1] + activations.fraction_above_0_95[-1] > 0.5
    assert run.verdict == "healthy" and "saturation" not in run.problems


def _ten_classes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class (one of 10, balanced) is the decile of a fixed linear function of their pixels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    scores = x.reshape(n, -1) @ np.random.default_rng(1).normal(size=8 * 8 * 3)
    return x, np.argsort(np.argsort(scores)) * 10 // n


def test_a_loss_stuck_at_chance_is_a_finding_with_the_learning_rate_first(keras_mod, tmp_path):
    keras = keras_mod
    x, y = _ten_classes(256)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])  # fmt: skip
    run = _fit(keras, model, x, y, tmp_path, epochs=6, loss="sparse_categorical_crossentropy",
               optimizer=keras.optimizers.Adam(1.0))  # fmt: skip
    chance = next(finding for finding in run.findings if finding.kind == "loss_at_chance")
    assert chance.evidence["chance_loss"] == pytest.approx(np.log(10))
    assert chance.evidence["best_loss"] >= 0.95 * np.log(10)
    # Adam at 1.0 is high: the learning rate first, saying so, then the data check.
    assert chance.fixes[0].startswith("Lower the learning rate (Adam runs at 1; 0.0003 is a safe start)")
    assert chance.fixes[1] == FIXES["check_data"]
    assert "loss_at_chance" in run.problems and run.verdict != "healthy"


def test_a_learning_model_is_not_at_chance(keras_mod, tmp_path):
    keras = keras_mod
    x, y = _ten_classes(256)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])  # fmt: skip
    run = _fit(keras, model, x, y, tmp_path, epochs=6, loss="sparse_categorical_crossentropy",
               optimizer=keras.optimizers.Adam(1e-2))  # fmt: skip
    assert "loss_at_chance" not in run.problems


@pytest.mark.slow
def test_mobilenet_fixes_never_recommend_what_it_has(mobilenet_logdir):
    """MobileNetV2's every ReLU follows BatchNorm, its blocks have residual Adds, its convolutions are
    Glorot-initialised: a finding on it may say He init, never BatchNorm or shortcuts."""
    from keras_relu_doctor import read_logdir
    from keras_relu_doctor.diagnose.fixes import ModelContext, ranked, tailor

    context = ModelContext.from_facts(read_logdir(mobilenet_logdir).run("train").model_facts)
    relus = [path for path, layer in context.layers.items() if layer["class"] == "ReLU"]
    assert len(relus) == 35 and context.residual
    every = ranked("normalization", "residual", "he_init", "leaky_relu", "lower_lr", "initializer")
    kept = [KEY_OF_FIX[fix] for fix in tailor(every, relus, context)]
    assert kept == ["he_init", "leaky_relu", "lower_lr", "initializer"]
    run = build_report(mobilenet_logdir).run("train")
    assert all(FIXES["normalization"] not in f.fixes and FIXES["residual"] not in f.fixes for f in run.findings)
    # Activation layers have no weights of their own: the table says so rather than "unknown".
    assert {run.layer(path).grad_status for path in relus} == {"no_weights"}
    assert run.layer("Conv1").grad_status == "ok"

"""Logs written by other tools: PyTorch-style tags through tensorboardX (the writer PyTorch's
``torch.utils.tensorboard`` grew from, same protos and tag freedom), and Keras' own callback."""

from __future__ import annotations

import numpy as np
import pytest

from keras_relu_doctor.diagnose.other_writers import tag_role
from keras_relu_doctor.report import SOURCE_KERAS, SOURCE_LEGACY, build_report


@pytest.fixture(scope="module")
def pytorch_style_logdir(tmp_path_factory):
    """Two runs logged as PyTorch users do: one whose ReLU dies from step 1, one healthy."""
    from tensorboardX import SummaryWriter

    root = tmp_path_factory.mktemp("pytorch_style")
    rng = np.random.default_rng(0)
    for name, shift in (("dying", 3.0), ("healthy", 0.0)):
        writer = SummaryWriter(str(root / name))
        for step in range(5):
            preactivation = rng.normal(size=(256, 32)) - shift * step
            writer.add_histogram("activations/relu_1", np.maximum(preactivation, 0.0), step)
            writer.add_histogram("fc1/output", preactivation, step)
            writer.add_histogram("gradients/0.weight", rng.normal(size=200) * 0.05, step)
            writer.add_histogram("fc2.weight.grad", rng.normal(size=200) * 0.05, step)
            writer.add_histogram("fc2.weight", rng.normal(size=200), step)
            writer.add_histogram("images_mean_by_channel", rng.normal(size=3), step)
            writer.add_scalar("Loss/train", 1.0 / (step + 1), step)
            writer.add_scalar("Loss/val", 1.2 / (step + 1), step)
        writer.close()
    return root


def test_pytorch_style_tags_are_grouped_by_layer(pytorch_style_logdir):
    run = build_report(pytorch_style_logdir).run("healthy")
    assert {layer.name for layer in run.layers} == {"relu_1", "fc1", "0", "fc2"}
    assert run.layer("fc2").grad_status == "ok" and run.layer("0").grad_status == "ok"
    assert run.loss_tag == "Loss/train"
    assert run.source == SOURCE_LEGACY
    assert run.unread_tags == ("images_mean_by_channel",)
    assert any(lack.startswith("per-unit records") for lack in run.lacks)


def test_pytorch_style_dying_run_is_named_and_healthy_run_is_healthy(pytorch_style_logdir):
    report = build_report(pytorch_style_logdir)
    dying, healthy = report.run("dying"), report.run("healthy")
    assert dying.verdict == "dying_relu"
    finding = next(f for f in dying.findings if f.kind == "dying_relu")
    assert finding.layer == "relu_1" and finding.onset_step == 1
    assert finding.evidence["estimated_dead_fraction"] == 1.0
    # fc1 logs the pre-activation (negative values): never a dying layer.
    assert not [f for f in dying.findings if f.layer == "fc1"]
    assert healthy.verdict == "healthy" and healthy.problems == ()


def test_keras_tensorboard_callback_logs_say_what_they_lack(keras_mod, regression_data, tmp_path):
    keras = keras_mod
    x, y = regression_data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)])
    run = build_report(tmp_path).run("train")
    assert run.source == SOURCE_KERAS
    assert run.verdict == "no_data"
    assert run.lacks[0].startswith("activation and gradient histograms (only weights)")
    assert run.unread_tags == ()


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("activations/relu_1", ("relu_1", "activations", "")),
        ("relu_1/output", ("relu_1", "activations", "")),
        ("gradients/0.weight", ("0", "gradients", "weight")),
        ("fc1.weight.grad", ("fc1", "gradients", "weight")),
        ("encoder/layer1.bias", ("encoder/layer1", "weights", "bias")),
        ("sequential/dense/kernel/histogram", ("sequential/dense", "weights", "kernel")),
        ("dense_1/kernel_0_grad", ("dense_1", "gradients", "kernel_0")),
        ("epoch_loss", None),
        ("activations", None),
    ],
)
def test_tag_roles_from_words_in_any_position(tag, expected):
    assert tag_role(tag) == expected

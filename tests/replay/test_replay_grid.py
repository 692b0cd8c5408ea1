"""The grid: names, sizes, --only, and bad options (no TensorFlow)."""

from __future__ import annotations

import pytest

from keras_relu_doctor.errors import BadOption, ReluDoctorError
from keras_relu_doctor.replay.grid import (
    ACTIVATIONS,
    DEPTHS,
    HELP_VARIANTS,
    INITIALIZERS,
    MORE_DATA_FACTOR,
    MORE_EPOCHS_FACTOR,
    PRESETS,
    ReplayOptions,
    build_grid,
)


def test_quick_grid_covers_the_article_and_the_help_checks():
    grid = build_grid("quick")
    settings = {spec.setting for spec in grid}
    linear_head = len(DEPTHS) * len(INITIALIZERS) * len(ACTIVATIONS) + len(DEPTHS) + len(HELP_VARIANTS)
    article_head = len(DEPTHS) * len(INITIALIZERS) + len(HELP_VARIANTS)  # ReLU only in the quick preset
    expected = linear_head + article_head
    assert len(settings) == expected == 68
    assert {spec.activation for spec in grid if spec.head == "article"} == {"relu"}
    assert len(grid) == expected * PRESETS["quick"].seeds
    assert len({spec.name for spec in grid}) == len(grid)
    selu = [spec for spec in grid if spec.activation == "selu"]
    assert {(spec.initializer, spec.dropout) for spec in selu} == {("lecun_normal", "alpha_dropout")}


def test_help_checks_change_one_thing_of_the_dying_model():
    base, more_data, dropout, more_epochs, *article = build_grid("quick", only="relu-random_uniform-d1*", seeds=1)
    assert [spec.head for spec in article] == ["article"] * 4
    assert base.variant == "base"
    assert more_data.samples == base.samples * MORE_DATA_FACTOR
    assert more_epochs.epochs == base.epochs * MORE_EPOCHS_FACTOR
    assert (dropout.dropout, dropout.samples, dropout.epochs) == ("dropout", base.samples, base.epochs)


def test_full_preset_is_the_article_scale():
    spec = build_grid("full", only="relu-he_normal-d1", seeds=1)[0]
    assert spec.samples == 200_000


def test_overrides_and_only_as_substring_or_glob():
    grid = build_grid("quick", only="d3", seeds=3, epochs=2, samples=300, target="random-labels")
    assert {spec.depth for spec in grid} == {3}
    assert {spec.seed for spec in grid} == {0, 1, 2}
    assert {(spec.epochs, spec.samples, spec.target) for spec in grid if spec.variant == "base"} == {
        (2, 300, "random-labels")
    }
    assert [spec.setting for spec in build_grid("quick", only="tanh-he_*-d1", seeds=1)] == [
        "tanh-he_normal-d1",
        "tanh-he_uniform-d1",
    ]


def test_options_object_builds_the_same_grid():
    assert ReplayOptions(only="selu", seeds=2).grid() == build_grid("quick", only="selu", seeds=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"only": "no-such-setting"}, "matches no setting"),
        ({"seeds": 0}, "--seeds must be at least 1"),
        ({"epochs": -1}, "--epochs must be at least 1"),
        ({"samples": 5}, "--samples must be at least 10"),
        ({"target": "cats"}, "unknown target 'cats'"),
    ],
)
def test_bad_options_raise_one_line_errors(options, message):
    with pytest.raises(BadOption, match=message) as raised:
        build_grid(**options)
    assert isinstance(raised.value, ReluDoctorError)
    assert "\n" not in str(raised.value)


def test_replay_modules_and_the_cli_import_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, keras_relu_doctor.cli.main\n"
        "from keras_relu_doctor.replay import claims, data, experiment, experiments, grid, model, results, runner, summary, train\n"
        "from keras_relu_doctor.replay.deep_stack import claims, data, grid, model, results, summary, train\n"
        "from keras_relu_doctor.replay.spikes import claims, grid, model, results, summary, train\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"

"""The grid of runs: one frozen :class:`RunSpec` per (setting, seed). No TensorFlow here.

A *setting* is one model and training recipe (``relu-random_uniform-d1``); a *run*
is a setting trained with one seed (``relu-random_uniform-d1-s0``). The grid is
the article's (Jithin Jayan, "Is ReLU Dead?", 2019): depth {1, 3} x six
initializers x {relu, leaky_relu, tanh, sigmoid}, plus SELU with lecun_normal and
AlphaDropout, plus the article's "does it help?" checks on the dying ReLU model;
each with our linear head, and (ReLU in the quick preset, all in the full one)
with the article's, where the output unit uses the activation too.

>>> grid = build_grid("quick", only="relu-random_uniform-d1*", seeds=1)
>>> [spec.name for spec in grid][:4]
['relu-random_uniform-d1-s0', 'relu-random_uniform-d1-more_data-s0', 'relu-random_uniform-d1-dropout-s0', 'relu-random_uniform-d1-more_epochs-s0']
>>> [spec.name for spec in grid][4]
'relu-random_uniform-d1-article-s0'
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from typing import Any

from keras_relu_doctor.errors import BadOption

DEPTHS = (1, 3)
# "negative" is the article's RandomUniform(-1, 0): weights drawn like the inputs.
INITIALIZERS = ("he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "random_uniform", "negative")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
# The article prescribes SELU only with lecun_normal and AlphaDropout.
SELU_INITIALIZER = "lecun_normal"
TARGETS = ("linear", "random-labels")
# The network's last layer: ours, a linear Dense(1) head on the hidden layers; or the
# article's, where every layer uses the activation, the output included (its one-layer
# network is a single Dense unit, its three-layer network three Dense layers).
HEAD_LINEAR = "linear"
HEAD_ARTICLE = "article"
HEADS = (HEAD_LINEAR, HEAD_ARTICLE)

# The article's dying model ("random weight init, zero bias") is Keras' random_uniform,
# uniform(-0.05, 0.05); its "does it help?" checks change one thing of that model.
BASE_INITIALIZER = "random_uniform"
VARIANT_BASE = "base"
VARIANT_MORE_DATA = "more_data"
VARIANT_DROPOUT = "dropout"
VARIANT_MORE_EPOCHS = "more_epochs"
HELP_VARIANTS = (VARIANT_MORE_DATA, VARIANT_DROPOUT, VARIANT_MORE_EPOCHS)
# How much "more" the checks use.
MORE_DATA_FACTOR = 4
MORE_EPOCHS_FACTOR = 4
DROPOUT_RATE = 0.2
ALPHA_DROPOUT_RATE = 0.1

DATA_SEED = 0  # one data set for every run: seeds vary the weights, not the task
UNITS = 16  # units per hidden layer


@dataclass(frozen=True)
class Preset:
    """Sizes of one replay: the grid is the same, only the scale changes.

    >>> PRESETS["quick"].seeds
    2
    """

    name: str
    samples: int
    epochs: int
    seeds: int
    batch_size: int = 32
    learning_rate: float = 1e-3
    probe_samples: int = 512
    # Activations also run with the article's head (the ReLU claims need it; the quick
    # preset leaves the others out to stay within a few minutes).
    article_head: tuple[str, ...] = ("relu",)


PRESETS = {
    # 136 runs; about 4 minutes on 2 CPU cores (README, "A real run").
    "quick": Preset("quick", samples=3000, epochs=5, seeds=2),
    # The article's scale: 200,000 samples, 70/30 split; every activation under both heads.
    "full": Preset("full", samples=200_000, epochs=10, seeds=3,
                   article_head=("relu", "leaky_relu", "tanh", "sigmoid", "selu")),  # fmt: skip
}


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; ``run.json`` is ``asdict`` of it.

    >>> spec = RunSpec(activation="relu", initializer="he_normal", depth=3, seed=1)
    >>> spec.setting, spec.name
    ('relu-he_normal-d3', 'relu-he_normal-d3-s1')
    """

    activation: str
    initializer: str
    depth: int
    seed: int
    variant: str = VARIANT_BASE
    dropout: str = ""  # "", "dropout" or "alpha_dropout", after each hidden layer
    dropout_rate: float = 0.0
    units: int = UNITS
    samples: int = PRESETS["quick"].samples
    epochs: int = PRESETS["quick"].epochs
    batch_size: int = 32
    learning_rate: float = 1e-3
    target: str = "linear"
    data_seed: int = DATA_SEED
    probe_samples: int = 512
    head: str = HEAD_LINEAR

    @property
    def setting(self) -> str:
        """The run's name without its seed: what the summary groups by.

        >>> RunSpec("relu", "negative", 3, 0, head=HEAD_ARTICLE).setting
        'relu-negative-d3-article'
        """
        parts = [self.activation, self.initializer, f"d{self.depth}"]
        if self.variant != VARIANT_BASE:
            parts.append(self.variant)
        elif self.dropout:
            parts.append(self.dropout)
        if self.head != HEAD_LINEAR:
            parts.append(self.head)
        return "-".join(parts)

    @property
    def name(self) -> str:
        """The run's folder name under the replay's logdir."""
        return f"{self.setting}-s{self.seed}"


def _settings(preset: Preset, target: str) -> list[RunSpec]:
    """One spec per setting, seed 0; the caller fans out the seeds."""
    base = RunSpec(
        activation="relu",
        initializer=BASE_INITIALIZER,
        depth=1,
        seed=0,
        samples=preset.samples,
        epochs=preset.epochs,
        batch_size=preset.batch_size,
        learning_rate=preset.learning_rate,
        target=target,
        probe_samples=preset.probe_samples,
    )
    settings: list[RunSpec] = []
    for activation in ACTIVATIONS:
        for initializer in INITIALIZERS:
            for depth in DEPTHS:
                settings.append(replace(base, activation=activation, initializer=initializer, depth=depth))
                if (activation, initializer, depth) == (base.activation, base.initializer, base.depth):
                    settings.extend(_help_checks(base))
    for depth in DEPTHS:
        settings.append(
            replace(
                base,
                activation="selu",
                initializer=SELU_INITIALIZER,
                depth=depth,
                dropout="alpha_dropout",
                dropout_rate=ALPHA_DROPOUT_RATE,
            )
        )
    if target == "linear":  # a rectified or squashed output cannot be trained on 0/1 labels with cross-entropy
        settings += [replace(spec, head=HEAD_ARTICLE) for spec in settings if spec.activation in preset.article_head]
    return settings


def _help_checks(base: RunSpec) -> list[RunSpec]:
    """The article's "does it help?" checks: more data, Dropout, more epochs.

    (More layers is the depth-3 setting of the same model.)
    """
    return [
        replace(base, variant=VARIANT_MORE_DATA, samples=base.samples * MORE_DATA_FACTOR),
        replace(base, variant=VARIANT_DROPOUT, dropout="dropout", dropout_rate=DROPOUT_RATE),
        replace(base, variant=VARIANT_MORE_EPOCHS, epochs=base.epochs * MORE_EPOCHS_FACTOR),
    ]


def _matches(setting: str, pattern: str) -> bool:
    # A pattern without wildcards matches as a substring: --only selu, --only d3.
    if not any(char in pattern for char in "*?["):
        return pattern in setting
    return fnmatch.fnmatchcase(setting, pattern)


@dataclass(frozen=True)
class ReplayOptions:
    """The options of one replay, as ``relu-doctor replay`` takes them (None: the preset's).

    >>> len(ReplayOptions(only="selu").grid())
    4
    """

    preset: str = "quick"
    only: str | None = None
    seeds: int | None = None
    epochs: int | None = None
    samples: int | None = None
    target: str = "linear"
    experiment: str = "dying"
    backend: str | None = None  # Keras' backend; None: KERAS_BACKEND, else tensorflow

    def grid(self) -> tuple[Any, ...]:
        """The runs of this replay's experiment (``RunSpec`` for ``dying``)."""
        from keras_relu_doctor.replay.experiments import experiment_named

        chosen = experiment_named(self.experiment)
        extra = {"target": self.target} if "target" in chosen.options else {}
        if not extra and self.target != "linear":
            raise BadOption(f"--target applies to --experiment dying only, not {self.experiment}")
        return chosen.build_grid(self.preset, only=self.only, seeds=self.seeds, epochs=self.epochs,
                                 samples=self.samples, **extra)  # fmt: skip


def check_overrides(seeds: int | None, epochs: int | None, samples: int | None, *, fewest: int, why: str) -> None:
    """One-line errors for ``--seeds``/``--epochs``/``--samples`` below 1, or samples below ``fewest``.

    >>> check_overrides(None, 0, None, fewest=10, why="a split")
    Traceback (most recent call last):
    ...
    keras_relu_doctor.errors.BadOption: --epochs must be at least 1, got 0
    """
    for option, value in (("--seeds", seeds), ("--epochs", epochs), ("--samples", samples)):
        if value is not None and value < 1:
            raise BadOption(f"{option} must be at least 1, got {value}")
    if samples is not None and samples < fewest:
        raise BadOption(f"--samples must be at least {fewest} ({why}), got {samples}")


def build_grid(
    preset: str = "quick",
    *,
    only: str | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    samples: int | None = None,
    target: str = "linear",
) -> tuple[RunSpec, ...]:
    """The runs of one replay, settings in grid order, seeds 0..N-1 within each.

    ``only`` is a glob over setting names (``relu-he_*-d1``) or, without
    wildcards, a substring (``selu``). ``epochs``/``samples`` override the
    preset's (the "more" checks scale from them).

    >>> len(build_grid("quick", seeds=1))
    68
    >>> build_grid("quick", only="nothing-like-this")
    Traceback (most recent call last):
    ...
    keras_relu_doctor.errors.BadOption: --only 'nothing-like-this' matches no setting: run `relu-doctor replay --list` to see the setting names
    """
    if preset not in PRESETS:
        raise BadOption(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    if target not in TARGETS:
        raise BadOption(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    check_overrides(seeds, epochs, samples, fewest=10, why="70/30 split and a probe batch")
    chosen = PRESETS[preset]
    chosen = replace(
        chosen,
        seeds=seeds or chosen.seeds,
        epochs=epochs or chosen.epochs,
        samples=samples or chosen.samples,
    )
    settings = _settings(chosen, target)
    if only:
        settings = [spec for spec in settings if _matches(spec.setting, only)]
        if not settings:
            raise BadOption(
                f"--only {only!r} matches no setting: run `relu-doctor replay --list` to see the setting names"
            )
    return tuple(replace(spec, seed=seed) for spec in settings for seed in range(chosen.seeds))

"""The deep-stack grid: one frozen :class:`StackSpec` per (setting, seed). No TensorFlow here.

The LeNet experiments on vanishing and exploding gradients (the blog post
"LeNet试验(三) 深入理解梯度消失/梯度爆炸及解决办法", CSDN): a small conv net
whose middle is N stacked blocks of two convolutions, trained on a small
image task. Settings: sigmoid and ReLU stacks, each plain, with BatchNorm
after every convolution, and with residual shortcuts, over a range of N; a
large uniform initializer with ReLU (explosion) with and without gradient
clipping; and clipping on a deep sigmoid stack (vanishing).

>>> [spec.setting for spec in build_stack_grid("quick", only="relu-b2", seeds=1)]
['relu-b2', 'relu-b2-bn', 'relu-b2-res']
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace

from keras_relu_doctor.errors import BadOption
from keras_relu_doctor.replay.grid import check_overrides

ACTIVATIONS = ("sigmoid", "relu")
# How each stack is built: plain, BatchNorm after each convolution (before the
# activation), or a residual shortcut around each block.
FORMS = ("plain", "bn", "res")
INIT_DEFAULT = "default"  # PyTorch's default, as in the article: U(+-1/sqrt(fan_in)) weights and biases
INIT_LARGE = "large"  # the article's explosion: weights U(-0.5, 0.5)
CLIP_NORM = 1.0  # clipnorm of the clipping settings (Keras' optimizer argument)
DATA_SEED = 0


@dataclass(frozen=True)
class StackPreset:
    """Sizes of one deep-stack replay.

    >>> STACK_PRESETS["quick"].blocks
    (2, 8, 16)
    """

    name: str
    blocks: tuple[int, ...]  # stack depths, in blocks of two convolutions
    explode_blocks: tuple[int, ...]  # depths of the large-initializer and clipping settings
    samples: int
    epochs: int
    seeds: int
    batch_size: int = 32
    learning_rate: float = 1e-3


STACK_PRESETS = {
    # 42 runs (21 settings x 2 seeds); a few minutes on 2 cores (README, "Deep stacks").
    "quick": StackPreset("quick", blocks=(2, 8, 16), explode_blocks=(8,), samples=2000, epochs=6, seeds=2),
    # The article's range of depths, more data and epochs.
    "full": StackPreset("full", blocks=(2, 4, 6, 8, 10, 12, 16, 24, 40), explode_blocks=(4, 8, 16),
                        samples=6000, epochs=15, seeds=3),  # fmt: skip
}


@dataclass(frozen=True)
class StackSpec:
    """Everything one deep-stack run needs; ``run.json`` is ``asdict`` of it.

    >>> StackSpec("relu", 8, "res", seed=1).name
    'relu-b8-res-s1'
    >>> StackSpec("relu", 8, init=INIT_LARGE, clip=CLIP_NORM).setting
    'relu-b8-large_init-clip'
    """

    activation: str
    blocks: int
    form: str = "plain"
    init: str = INIT_DEFAULT
    clip: float = 0.0  # clipnorm; 0: none
    seed: int = 0
    samples: int = STACK_PRESETS["quick"].samples
    epochs: int = STACK_PRESETS["quick"].epochs
    batch_size: int = 32
    learning_rate: float = 1e-3
    data_seed: int = DATA_SEED
    probe_samples: int = 256
    experiment: str = "deep-stack"

    @property
    def setting(self) -> str:
        parts = [self.activation, f"b{self.blocks}"]
        if self.form != "plain":
            parts.append(self.form)
        if self.init != INIT_DEFAULT:
            parts.append(f"{self.init}_init")
        if self.clip:
            parts.append("clip")
        return "-".join(parts)

    @property
    def name(self) -> str:
        return f"{self.setting}-s{self.seed}"


def _settings(preset: StackPreset) -> list[StackSpec]:
    base = StackSpec("relu", 1, samples=preset.samples, epochs=preset.epochs, batch_size=preset.batch_size,
                     learning_rate=preset.learning_rate)  # fmt: skip
    settings = [
        replace(base, activation=activation, blocks=blocks, form=form)
        for activation in ACTIVATIONS
        for blocks in preset.blocks
        for form in FORMS
    ]
    for blocks in preset.explode_blocks:
        settings += [
            replace(base, blocks=blocks, init=INIT_LARGE),
            replace(base, blocks=blocks, init=INIT_LARGE, clip=CLIP_NORM),
        ]
    # Clipping against vanishing: the deepest plain sigmoid stack, clipped.
    settings.append(replace(base, activation="sigmoid", blocks=max(preset.blocks), clip=CLIP_NORM))
    return settings


def _matches(setting: str, pattern: str) -> bool:
    if not any(char in pattern for char in "*?["):
        return setting == pattern or setting.startswith(pattern + "-") or pattern in setting.split("-")
    return fnmatch.fnmatchcase(setting, pattern)


def build_stack_grid(
    preset: str = "quick",
    *,
    only: str | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    samples: int | None = None,
) -> tuple[StackSpec, ...]:
    """The runs of one deep-stack replay, settings in grid order, seeds 0..N-1 within each.

    ``only``: a glob over setting names (``relu-b*-res``), or without wildcards a
    setting name, its start (``relu-b2``) or one of its parts (``res``).

    >>> len(build_stack_grid("quick", seeds=1))
    21
    """
    if preset not in STACK_PRESETS:
        raise BadOption(f"unknown preset {preset!r}: use one of {', '.join(STACK_PRESETS)}")
    check_overrides(seeds, epochs, samples, fewest=40, why="4 per class, 70/30 split")
    chosen = STACK_PRESETS[preset]
    chosen = replace(chosen, seeds=seeds or chosen.seeds, epochs=epochs or chosen.epochs,
                     samples=samples or chosen.samples)  # fmt: skip
    settings = _settings(chosen)
    if only:
        settings = [spec for spec in settings if _matches(spec.setting, only)]
        if not settings:
            raise BadOption(
                f"--only {only!r} matches no setting: run `relu-doctor replay --experiment deep-stack --list`"
                " to see the setting names"
            )
    return tuple(replace(spec, seed=seed) for spec in settings for seed in range(chosen.seeds))

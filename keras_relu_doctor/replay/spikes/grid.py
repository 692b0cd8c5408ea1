"""The loss-spikes grid: one frozen :class:`SpikeSpec` per (setting, seed). No TensorFlow here.

Settings: max pooling and average pooling at a high learning rate (Adam 1e-2)
and at a 10x lower one; then, on the max-pooling model at the high rate, the article's remedies one at a time: a 10x lower
learning rate, linear warmup, PReLU instead of ReLU, and an L2 normalisation
after the pooling.

>>> [spec.setting for spec in build_spike_grid("quick", seeds=1)]
['max', 'avg', 'max-low_lr', 'avg-low_lr', 'max-warmup', 'max-prelu', 'max-l2norm']
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace

from keras_relu_doctor.errors import BadOption
from keras_relu_doctor.replay.grid import check_overrides

HIGH_LR = 1e-2  # high enough that the probe's loss spikes on this task
LOW_LR = 1e-3
WARMUP_STEPS = 100  # linear warmup to HIGH_LR, as the article's lr * step / 1000 (scaled to a short run)
DATA_SEED = 0


@dataclass(frozen=True)
class SpikePreset:
    name: str
    samples: int
    epochs: int
    seeds: int
    log_every: int  # ReluDoctor's update_freq, in batches


SPIKE_PRESETS = {
    # 14 runs; under a minute on 2 cores (README, "Loss spikes").
    "quick": SpikePreset("quick", samples=3000, epochs=4, seeds=2, log_every=5),
    "full": SpikePreset("full", samples=10000, epochs=10, seeds=3, log_every=10),
}


@dataclass(frozen=True)
class SpikeSpec:
    """Everything one loss-spikes run needs; ``run.json`` is ``asdict`` of it.

    >>> SpikeSpec(pool="max", activation="prelu", seed=1).name
    'max-prelu-s1'
    """

    pool: str = "max"  # "max" or "avg"
    activation: str = "relu"  # "relu" or "prelu"
    learning_rate: float = HIGH_LR
    warmup_steps: int = 0
    l2norm: bool = False  # an L2 normalisation of each position's channels after the pooling
    seed: int = 0
    samples: int = SPIKE_PRESETS["quick"].samples
    epochs: int = SPIKE_PRESETS["quick"].epochs
    batch_size: int = 32
    log_every: int = SPIKE_PRESETS["quick"].log_every
    data_seed: int = DATA_SEED
    probe_samples: int = 256
    experiment: str = "spikes"

    @property
    def setting(self) -> str:
        parts = [self.pool]
        if self.learning_rate != HIGH_LR:
            parts.append("low_lr")
        if self.warmup_steps:
            parts.append("warmup")
        if self.activation != "relu":
            parts.append(self.activation)
        if self.l2norm:
            parts.append("l2norm")
        return "-".join(parts)

    @property
    def name(self) -> str:
        return f"{self.setting}-s{self.seed}"


def _settings(preset: SpikePreset) -> list[SpikeSpec]:
    base = SpikeSpec(samples=preset.samples, epochs=preset.epochs, log_every=preset.log_every)
    return [
        base,
        replace(base, pool="avg"),
        replace(base, learning_rate=LOW_LR),
        replace(base, pool="avg", learning_rate=LOW_LR),
        replace(base, warmup_steps=WARMUP_STEPS),
        replace(base, activation="prelu"),
        replace(base, l2norm=True),
    ]


def build_spike_grid(
    preset: str = "quick",
    *,
    only: str | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    samples: int | None = None,
) -> tuple[SpikeSpec, ...]:
    """The runs of one loss-spikes replay; ``only`` is a glob or an exact setting name (``max``, ``max-prelu``).

    >>> [spec.name for spec in build_spike_grid(only="avg", seeds=2)]
    ['avg-s0', 'avg-s1']
    """
    if preset not in SPIKE_PRESETS:
        raise BadOption(f"unknown preset {preset!r}: use one of {', '.join(SPIKE_PRESETS)}")
    check_overrides(seeds, epochs, samples, fewest=40, why="4 per class, 70/30 split")
    chosen = SPIKE_PRESETS[preset]
    chosen = replace(chosen, seeds=seeds or chosen.seeds, epochs=epochs or chosen.epochs,
                     samples=samples or chosen.samples)  # fmt: skip
    settings = _settings(chosen)
    if only:
        wildcard = any(char in only for char in "*?[")
        settings = [s for s in settings if (fnmatch.fnmatchcase(s.setting, only) if wildcard else s.setting == only)]
        if not settings:
            raise BadOption(
                f"--only {only!r} matches no setting: run `relu-doctor replay --experiment spikes --list`"
                " to see the setting names"
            )
    return tuple(replace(spec, seed=seed) for spec in settings for seed in range(chosen.seeds))

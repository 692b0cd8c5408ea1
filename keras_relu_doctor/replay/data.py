"""The synthetic data of the article: inputs uniform in (-1, 0), 4 features, 70/30 split.

The article does not give its target. Two are offered (``RunSpec.target``):

- ``linear`` (default): ``y = x @ LINEAR_WEIGHTS + LINEAR_BIAS``, exactly learnable,
  so a model that stops learning shows up as a loss stuck at the baseline (the loss
  of always predicting the training mean).
- ``random-labels``: 0/1 labels drawn independently of ``x``; nothing can be learnt,
  only memorised, so loss curves say little and the dead fractions carry the story.

Only numpy here: the data is the same in every process and for every run seed.

>>> data = make_data(100, target="linear", data_seed=0)
>>> data.x_train.shape, data.x_val.shape, float(data.x_train.max()) < 0
((70, 4), (30, 4), True)
>>> round(data.baseline_val_loss, 3)
0.606
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_FEATURES = 4
TRAIN_SHARE = 0.7
# A fixed linear target over the negative inputs; mixed signs so units need weights
# of both signs, and a variance near 0.6 so the baseline MSE is well above 0.
LINEAR_WEIGHTS = (0.5, -1.0, 1.5, -2.0)
LINEAR_BIAS = 0.25


@dataclass(frozen=True)
class ReplayData:
    """Train/validation arrays and the loss of the best constant prediction."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    baseline_val_loss: float

    def probe(self, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixed probe batch: the first ``samples`` validation samples."""
        return self.x_val[:samples], self.y_val[:samples]


def make_data(samples: int, *, target: str = "linear", data_seed: int = 0) -> ReplayData:
    """``samples`` rows of x ~ U(-1, 0)^4 and the chosen target, split 70/30."""
    rng = np.random.default_rng(data_seed)
    x = rng.uniform(-1.0, 0.0, size=(samples, NUM_FEATURES)).astype("float32")
    if target == "linear":
        y = x @ np.asarray(LINEAR_WEIGHTS, dtype="float32") + np.float32(LINEAR_BIAS)
    elif target == "random-labels":
        y = rng.integers(0, 2, size=samples).astype("float32")
    else:
        raise ValueError(f"unknown target {target!r}")
    y = y.reshape(-1, 1)
    cut = int(round(samples * TRAIN_SHARE))
    x_train, y_train, x_val, y_val = x[:cut], y[:cut], x[cut:], y[cut:]
    return ReplayData(x_train, y_train, x_val, y_val, _baseline_loss(y_train, y_val, target))


def _baseline_loss(y_train: np.ndarray, y_val: np.ndarray, target: str) -> float:
    """Validation loss of predicting the training mean: what a dead model scores."""
    mean = float(y_train.mean())
    if target == "linear":
        return float(np.mean((y_val - mean) ** 2))
    p = min(max(mean, 1e-7), 1 - 1e-7)
    return float(-np.mean(y_val * np.log(p) + (1 - y_val) * np.log(1 - p)))

"""The image task of the deep-stack replay: synthetic 8x8 patterns, 10 classes. No TensorFlow.

Each class is a fixed smooth random pattern; a sample is its class's pattern
shifted by up to one pixel each way, plus Gaussian noise. It needs no download
and is learnt to high accuracy in a few epochs by a shallow conv net, so a
stack that does not learn it is one that cannot train (the article used MNIST
for the same reason: easy enough that only the depth matters).

>>> data = make_images(200, data_seed=0)
>>> data.x_train.shape, data.x_val.shape, data.chance_accuracy
((140, 8, 8, 1), (60, 8, 8, 1), 0.1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = 10
SIDE = 8
NOISE = 0.2  # standard deviation of the noise, against patterns in [0, 1]
TRAIN_SHARE = 0.7


@dataclass(frozen=True)
class ImageData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def chance_accuracy(self) -> float:
        return 1.0 / CLASSES

    @property
    def chance_loss(self) -> float:
        """Cross-entropy of the uniform guess: what a model that learnt nothing scores."""
        return float(np.log(CLASSES))

    def probe(self, samples: int) -> tuple[np.ndarray, np.ndarray]:
        return self.x_val[:samples], self.y_val[:samples]


def _patterns(rng: np.random.Generator) -> np.ndarray:
    """``CLASSES`` smooth patterns in [0, 1]: random fields blurred by a 3x3 box, rescaled."""
    raw = rng.normal(size=(CLASSES, SIDE + 2, SIDE + 2))
    blurred = sum(raw[:, i : i + SIDE, j : j + SIDE] for i in range(3) for j in range(3))
    low = blurred.min(axis=(1, 2), keepdims=True)
    high = blurred.max(axis=(1, 2), keepdims=True)
    return (blurred - low) / (high - low)


def make_images(samples: int, *, data_seed: int = 0) -> ImageData:
    """``samples`` images (70% train, 30% validation), fixed by ``data_seed``."""
    rng = np.random.default_rng(data_seed)
    patterns = _patterns(rng)
    labels = np.arange(samples) % CLASSES
    rng.shuffle(labels)
    shifts = rng.integers(-1, 2, size=(samples, 2))
    images = np.stack([np.roll(patterns[label], tuple(shift), axis=(0, 1)) for label, shift in zip(labels, shifts)])
    images = images + rng.normal(scale=NOISE, size=images.shape)
    x = images[..., None].astype("float32")
    cut = int(round(samples * TRAIN_SHARE))
    return ImageData(x[:cut], labels[:cut].astype("int64"), x[cut:], labels[cut:].astype("int64"))

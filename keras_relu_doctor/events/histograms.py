"""Summary statistics of histograms, computed for many histograms at once.

Histograms arrive as ``(left, right, count)`` buckets: TF2's ``tf.summary.histogram``
writes exactly that, and legacy ``HistogramProto`` (TF1, PyTorch, tensorboardX) is
converted to it by :func:`legacy_buckets`. Values are taken as spread evenly
inside a bucket, as TensorBoard's own resampling does.

>>> import numpy as np
>>> buckets = np.array([[[0.0, 0.0, 6.0], [0.0, 1.0, 4.0]]])
>>> stats = bucket_stats(buckets)
>>> float(stats["zero_fraction"][0]), round(float(stats["fraction_above_0_95"][0]), 6)
(0.6, 0.02)
"""

from __future__ import annotations

import numpy as np

STAT_NAMES = (
    "count",
    "min",
    "max",
    "mean",
    "std",
    "sum_squares",
    "zero_fraction",
    "fraction_below_minus_0_95",
    "fraction_above_0_95",
    "fraction_below_0_05",
)
# Saturation is read as mass within 5% of the bounds of tanh (-1, 1) and sigmoid
# (0, 1), where their slope is under a tenth of its peak. A finer margin would be
# below the resolution of TF2's 30 equal-width buckets over [-1, 1].
SATURATION_MARGIN = 0.05
# A bucket this narrow around 0 holds only zeros (TF1 and tensorboardX use 1e-12).
POINT_WIDTH = 1e-9


def bucket_stats(buckets: np.ndarray) -> dict[str, np.ndarray]:
    """Per-histogram statistics of a ``[n, k, 3]`` array of ``(left, right, count)``.

    ``zero_fraction`` is the mass at 0: exact when the writer gives zero a bucket
    of its own (TF1's ``(-1e-12, 0]``, or TF2's single bucket when all values
    are 0); otherwise the mass of the bucket(s) that contain 0, an upper bound.
    """
    left, right, count = buckets[..., 0], buckets[..., 1], np.maximum(buckets[..., 2], 0.0)
    total = count.sum(axis=1)
    # Values near float64's limit (damaged files) overflow to inf: the statistic is then inf, not an error.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        safe_total = np.where(total > 0, total, np.nan)
        center = (left + right) / 2
        width = right - left
        mean = (center * count).sum(axis=1) / safe_total
        sum_squares = (count * (center**2 + width**2 / 12)).sum(axis=1)
        variance = np.maximum(sum_squares / safe_total - mean**2, 0.0)
        filled = count > 0
        lows = np.where(filled, left, np.inf).min(axis=1, initial=np.inf)  # a histogram may have no bucket
        highs = np.where(filled, right, -np.inf).max(axis=1, initial=-np.inf)
        holds_zero = (left <= 0) & (right >= 0)
        point_mass = (count * (holds_zero & (width <= POINT_WIDTH))).sum(axis=1)
        zero_mass = np.where(point_mass > 0, point_mass, (count * holds_zero).sum(axis=1))
        return {
            "count": total,
            "min": np.where(total > 0, lows, np.nan),
            "max": np.where(total > 0, highs, np.nan),
            "mean": mean,
            "std": np.sqrt(variance),
            "sum_squares": sum_squares,
            "zero_fraction": zero_mass / safe_total,
            "fraction_below_minus_0_95": _mass_below(left, right, count, -1 + SATURATION_MARGIN) / safe_total,
            "fraction_above_0_95": 1 - _mass_below(left, right, count, 1 - SATURATION_MARGIN) / safe_total,
            "fraction_below_0_05": _mass_below(left, right, count, SATURATION_MARGIN) / safe_total,
        }


def _mass_below(left: np.ndarray, right: np.ndarray, count: np.ndarray, threshold: float) -> np.ndarray:
    width = right - left
    share = np.where(
        width > 0,
        np.clip((threshold - left) / np.where(width > 0, width, 1.0), 0.0, 1.0),
        (left <= threshold).astype(float),
    )
    return (count * share).sum(axis=1)


def legacy_buckets(histo) -> tuple[np.ndarray, tuple[float, float, float, float, float]]:
    """``(left, right, count)`` buckets of a ``HistogramProto`` and its exact moments.

    The proto stores upper edges only (``bucket_limit``) and drops runs of empty
    buckets, so each bucket starts where the one before it ends; the first starts
    at ``min`` and the last ends at ``max``. The moments are
    ``(min, max, num, sum, sum_squares)``.
    """
    limits = np.asarray(histo.bucket_limit, dtype=np.float64)
    counts = np.asarray(histo.bucket, dtype=np.float64)
    if limits.size != counts.size:
        raise ValueError("histogram has a different number of bucket limits and counts")
    lowest, highest = float(histo.min), float(histo.max)
    lefts = np.concatenate(([lowest], limits[:-1])) if limits.size else limits
    lefts = np.clip(lefts, lowest, highest) if lowest <= highest else lefts
    rights = np.clip(limits, lowest, highest) if lowest <= highest else limits
    rights = np.maximum(rights, lefts)
    buckets = np.stack((lefts, rights, counts), axis=-1)
    return buckets, (lowest, highest, float(histo.num), float(histo.sum), float(histo.sum_squares))


def pad_and_stack(items: list[np.ndarray]) -> np.ndarray:
    """Stack ``[k_i, 3]`` bucket arrays into ``[n, max k, 3]``, padding with empty buckets."""
    width = max((item.shape[0] for item in items), default=0)
    stacked = np.zeros((len(items), max(width, 1), 3), dtype=np.float64)
    for index, item in enumerate(items):
        stacked[index, : item.shape[0]] = item
    return stacked

"""Our batched histogram op matches TensorBoard's own bucketing, edge cases included."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow_only  # the TensorFlow probe's in-graph bucketing


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).normal(size=1000),
        np.array([]),
        np.full(17, 3.5),
        np.array([0.0, 0.0, 1.0]),
        np.random.default_rng(1).uniform(-1e-7, 1e-7, size=50),
    ],
    ids=["normal", "empty", "single-value", "mostly-zero", "tiny"],
)
def test_histogram_tensors_match_tensorboard_buckets(values):
    import tensorflow as tf
    from tensorboard.plugins.histogram.summary_v2 import _buckets

    from keras_relu_doctor.probe import histogram_tensors

    other = np.arange(5.0)  # other histograms in the same batch must not interfere,
    with_nan = np.concatenate([values, [np.nan, np.inf]])
    twin = np.concatenate([values * -3.0 + 1.0, [0.0, 0.0]])  # nor one of the same size (bucketed as one matrix)
    ours = histogram_tensors([tf.constant(with_nan), tf.constant(other), tf.constant(twin)], 30).numpy()
    expected = _buckets(tf.constant(values, tf.float64), tf.constant(30)).numpy()
    np.testing.assert_allclose(ours[0], expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ours[1], _buckets(tf.constant(other), tf.constant(30)).numpy())
    np.testing.assert_allclose(ours[2], _buckets(tf.constant(twin), tf.constant(30)).numpy(), rtol=1e-12, atol=1e-300)


def test_large_tensors_are_bucketed_on_a_sample_within_two_points_of_the_whole():
    """What sampling changes: the share below each edge moves by at most 2 points; totals do not.

    2 points is about 3.6 standard errors of a share estimated from 8,192
    values (at most 0.55 points, at a share of one half).

    Edges span the sample, or the exact range where one is given (the probe
    gives each activation's, known from its units' extremes).
    """
    import tensorflow as tf
    from tensorboard.plugins.histogram.summary_v2 import _buckets

    from keras_relu_doctor.probe import histogram_tensors
    from keras_relu_doctor.probe.layout import HISTOGRAM_SAMPLE

    rng = np.random.default_rng(2)
    relu_like = np.maximum(rng.normal(size=(256, 16, 16, 8)), 0.0).astype("float32")  # 524,288 values
    skewed = rng.lognormal(size=1_000_003)
    for values in (relu_like, skewed):
        assert values.size > 4 * HISTOGRAM_SAMPLE
        flat = np.sort(values.ravel())
        exact = tf.constant([[flat[0], flat[-1]]], tf.float64)
        ours, with_range = (histogram_tensors([tf.constant(values)], 30, ranges=r).numpy()[0] for r in (None, exact))
        full = _buckets(tf.constant(flat, tf.float64), tf.constant(30)).numpy()
        np.testing.assert_allclose(with_range[:, :2], full[:, :2], rtol=1e-6)  # the exact edges
        assert flat[0] <= ours[0, 0] and ours[-1, 1] <= flat[-1]  # the sample's edges lie within
        for histogram in (ours, with_range):
            assert histogram[:, 2].sum() == pytest.approx(values.size)  # the same total
            below = np.searchsorted(flat, histogram[:-1, 1], side="right") / flat.size
            np.testing.assert_allclose(np.cumsum(histogram[:-1, 2]) / values.size, below, atol=0.02)

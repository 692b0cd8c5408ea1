"""Our batched histogram op matches TensorBoard's own bucketing, edge cases included."""

from __future__ import annotations

import numpy as np
import pytest


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

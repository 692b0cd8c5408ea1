"""The probe under a ``tf.distribute`` strategy: one replica's copy of the weights, events from the chief.

A model built in ``strategy.scope()`` holds ``MirroredVariable`` weights: one
copy per replica, equal after every step, since every replica applies the same
all-reduced update. The probe measures the network on this worker's first
copy, with the whole probe batch on one device: the computation of a
single-device run, so the numbers are that run's. Running it on every replica
and reducing would measure the same weights on the same samples once per
replica; splitting the probe batch among replicas would change what is
measured (BatchNormalization's batch statistics in training mode, the
histograms' samples). No collective op runs: the probe reads and writes only
this worker's memory, so no worker waits on another, and each worker of a
``MultiWorkerMirroredStrategy`` could measure alone. Every worker does measure,
so that ``on_dead="stop"`` stops all of them at the same step (a worker that
stopped alone would leave the others waiting in the next all-reduce).

The probe runs in TensorFlow's default replica context, where a callback of
``fit`` called outside ``strategy.scope()`` (as Keras' guides call it) already
is: there a ``MirroredVariable`` reads as its first local copy, a
``GradientTape`` differentiates with respect to it, and Keras scales no loss by
the number of replicas. ``fit`` called inside the scope runs callbacks in the
strategy's cross-replica context instead, where a tape cannot differentiate
with respect to a distributed variable and Keras divides every loss by the
number of replicas; :func:`default_replica_context` returns to the default
context for the probe's tracing and calls.

Only the chief writes events, as ``strategy.extended.should_save_summary``
says: TensorFlow's answer for summaries, False on every worker of a
``MultiWorkerMirroredStrategy`` but the chief, True for one-machine strategies.

>>> import tensorflow as tf
>>> writes_summaries(tf.distribute.get_strategy())
True
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import tensorflow as tf


def default_replica_context() -> ContextManager[object]:
    """TensorFlow's default replica context, where the probe is traced and called.

    Outside any ``strategy.scope()`` the callback is in it already, and nothing changes.
    """
    if not tf.distribute.has_strategy():
        return contextlib.nullcontext()
    # TensorFlow exports no way to leave a strategy's scope; its default
    # replica context is what every thread starts in.
    from tensorflow.python.distribute import distribute_lib

    return distribute_lib._get_default_replica_context()


def writes_summaries(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes events: the chief of a multi-worker strategy, and any one-machine run."""
    return bool(strategy.extended.should_save_summary)

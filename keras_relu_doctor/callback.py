"""``ReluDoctor``: the Keras callback that logs liveness, activations and gradients."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_relu_doctor import probe as probe_lib
from keras_relu_doctor import tags
from keras_relu_doctor.errors import UnsupportedModel
from keras_relu_doctor.events.writer import EventWriter

ON_DEAD_CHOICES = ("warn", "stop", "ignore")


class ReluDoctorWarning(UserWarning):
    """A layer died, or NaN/Inf appeared, during training."""


class ReluDoctor(keras.callbacks.Callback):
    """Logs per-layer liveness, activations and gradients to TensorBoard.

    At the end of every epoch (or every ``update_freq`` batches) the callback
    runs the model on a fixed probe batch in inference mode and writes, for
    every layer with weights, an activation, or pooling: histograms of its
    outputs, pre-activations and gradients; the share of dead, near-dead and
    zero outputs; gradient, weight and update norms; and a per-unit record of
    how often each unit is active, so ``relu-doctor report`` can name the dead
    units and when each died. Events go to ``log_dir/train``, where Keras'
    own ``TensorBoard`` callback writes, so both can share a ``log_dir``.

    Measuring never changes training: the probe runs with ``training=False``
    (BatchNormalization statistics stay put), takes no optimizer step, and
    touches no weight, metric or random stream. Training with and without the
    callback gives bit-identical weights.

    Args:
        log_dir: Folder for the event files (``log_dir/train``).
        probe_data: The samples every measurement is taken on: a tuple
            ``(x, y)`` or ``(x, y, sample_weight)`` of arrays (``x`` and ``y``
            may be dicts or lists for multi-input/-output models), or a
            ``tf.data.Dataset`` yielding such tuples, of which the first
            ``probe_size`` samples are taken. Defaults to `None`: the
            validation data of the ``fit`` call.
        probe_size: Number of probe samples kept. Defaults to `512`.
        update_freq: ``"epoch"`` to log after every epoch, or an integer N to
            log every N training batches (steps then count batches). Defaults
            to `"epoch"`.
        tolerance: A unit is active on a sample when ``|output| > tolerance``;
            a unit never active yet not exactly zero is near-dead. Defaults to
            `1e-6`.
        dead_threshold: Share of dead units in a layer that triggers
            ``on_dead``. Defaults to `0.5`.
        on_dead: ``"warn"`` to warn once per layer the first time its dead
            share passes ``dead_threshold``, ``"stop"`` to also stop training
            (as ``EarlyStopping`` does), ``"ignore"`` to stay silent. Defaults
            to `"warn"`.
        histogram_buckets: Buckets per histogram. Defaults to `30`.
        verbose: 1 prints where the events go and what is measured; 0 is
            silent (warnings still show). Defaults to `0`.

    Example:

    ```python
    model.fit(
        x, y, epochs=5, validation_data=(x_val, y_val),
        callbacks=[
            keras.callbacks.TensorBoard("logs/run1"),
            ReluDoctor("logs/run1", probe_data=(x_val[:512], y_val[:512])),
        ],
    )
    # then: relu-doctor report logs/   or   tensorboard --logdir logs/
    ```
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        probe_data: Any = None,
        probe_size: int = 512,
        update_freq: str | int = "epoch",
        tolerance: float = 1e-6,
        dead_threshold: float = 0.5,
        on_dead: str = "warn",
        histogram_buckets: int = probe_lib.DEFAULT_BUCKETS,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if not str(log_dir):
            raise ValueError("`log_dir` must be a folder path, got an empty string.")
        if on_dead not in ON_DEAD_CHOICES:
            raise ValueError(f"`on_dead` must be one of {ON_DEAD_CHOICES}, got on_dead={on_dead!r}.")
        if isinstance(update_freq, bool) or not (
            update_freq == "epoch" or (isinstance(update_freq, int) and update_freq > 0)
        ):
            raise ValueError(
                f"`update_freq` must be 'epoch' or a positive integer (batches), got update_freq={update_freq!r}."
            )
        if not (isinstance(tolerance, (int, float)) and np.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"`tolerance` must be a finite number >= 0, got tolerance={tolerance!r}.")
        if not (isinstance(dead_threshold, (int, float)) and 0.0 <= dead_threshold <= 1.0):
            raise ValueError(
                f"`dead_threshold` must be a share between 0 and 1, got dead_threshold={dead_threshold!r}."
            )
        if isinstance(probe_size, bool) or not (isinstance(probe_size, int) and probe_size > 0):
            raise ValueError(f"`probe_size` must be a positive integer, got probe_size={probe_size!r}.")
        if isinstance(histogram_buckets, bool) or not (isinstance(histogram_buckets, int) and histogram_buckets > 0):
            raise ValueError(
                f"`histogram_buckets` must be a positive integer, got histogram_buckets={histogram_buckets!r}."
            )
        if probe_data is not None:
            _check_probe_structure(probe_data)
        self.log_dir = os.fspath(log_dir)
        self.probe_data = probe_data
        self.probe_size = probe_size
        self.update_freq = update_freq
        self.tolerance = float(tolerance)
        self.dead_threshold = float(dead_threshold)
        self.on_dead = on_dead
        self.histogram_buckets = histogram_buckets
        self.verbose = verbose
        self._writer: EventWriter | None = None
        self._layout: probe_lib.ProbeLayout | None = None
        self._probe_fn: Any = None
        self._layers: list[probe_lib.ProbedLayer] = []
        self._probe_batch: tuple[Any, Any, Any] | None = None
        self._warned_dead: set[str] = set()
        self._warned_nonfinite = False
        self._batches_seen = 0
        self._first_batch = 0
        self.last_result: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------- set-up
    @property
    def layer_paths(self) -> list[str]:
        """Tag prefixes of the measured layers, in model order."""
        return [p.path for p in self._layers]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        probe_data = self.probe_data if self.probe_data is not None else _fit_validation_data()
        if probe_data is None:
            raise ValueError(
                "ReluDoctor needs probe samples: pass `probe_data`, e.g. "
                "ReluDoctor(log_dir, probe_data=(x_val[:512], y_val[:512])), "
                "or call fit(..., validation_data=(x_val, y_val))."
            )
        x, y, sample_weight = _take_probe(probe_data, self.probe_size)
        # One sample through the model first: subclassed models build their
        # sublayers (and their weights) on first call.
        y_pred_one = self._call_on_one(x)
        self._layers = probe_lib.select_layers(self.model)
        if not self._layers:
            raise UnsupportedModel(_unsupported_message(self.model))
        loss_fn = _private_loss(self.model)
        if loss_fn is None:
            warnings.warn(
                "ReluDoctor: the model was compiled without a loss, so no gradients are logged; "
                "compile with `loss=` to get gradient histograms and norms.",
                ReluDoctorWarning,
                stacklevel=2,
            )
        else:
            # Building creates trackers (variables), which a tf.function must not do.
            loss_fn(keras.tree.map_structure(lambda t: t[:1], y), y_pred_one)
        settings = probe_lib.ProbeSettings(
            tolerance=self.tolerance,
            step_unit=tags.STEP_EPOCH if self.update_freq == "epoch" else tags.STEP_BATCH,
            buckets=self.histogram_buckets,
        )
        self._probe_fn, self._layout = probe_lib.build_probe_function(
            self.model,
            self._layers,
            loss_fn,
            settings,
            probe_lib.snapshot_weights(self._layers),
        )
        self._probe_batch = (x, y, sample_weight)
        # Tracing now costs the same as at the first log, and tells at once
        # whether the forward pass reached any layer.
        self._probe_fn.get_concrete_function(x, y, sample_weight)
        if not self._layout.reached:
            raise UnsupportedModel(_unsupported_message(self.model))
        self._writer = EventWriter(os.path.join(self.log_dir, tags.TRAIN_SUBDIR))
        self._warned_dead.clear()
        self._warned_nonfinite = False
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        self._first_batch = int(iterations.numpy()) if iterations is not None else 0
        self._batches_seen = 0
        if self.verbose:
            print(
                f"ReluDoctor: measuring {len(self._layers)} layers on {_count(x)} probe samples, "
                f"events in {os.path.join(self.log_dir, tags.TRAIN_SUBDIR)}"
            )

    def _call_on_one(self, x: Any) -> Any:
        try:
            return self.model(keras.tree.map_structure(lambda t: t[:1], x), training=False)
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
            raise _probe_mismatch(self.model, x, error) from error

    # ---------------------------------------------------------------- logging
    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.update_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen % int(self.update_freq) == 0:
            self._log(self._first_batch + self._batches_seen, where=f"batch {self._first_batch + self._batches_seen}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.update_freq == "epoch":
            self._log(epoch, where=f"epoch {epoch}")
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._probe_fn = None

    def _log(self, step: int, where: str) -> None:
        if self._probe_fn is None or self._probe_batch is None:
            return
        x, y, sample_weight = self._probe_batch
        result = probe_lib.to_numpy(self._probe_fn(x, y, sample_weight))
        probe_lib.write_probe(self._writer, self._layout, result, step)
        self.last_result = result
        self._check(result, where)

    def _check(self, result: dict[str, np.ndarray], where: str) -> None:
        if result["nonfinite"].sum() > 0 and not self._warned_nonfinite:
            self._warned_nonfinite = True
            bad = [p for p, n in zip(self.layer_paths, result["nonfinite"]) if n > 0]
            warnings.warn(
                f"ReluDoctor: NaN/Inf in the activations or gradients of {', '.join(bad)} at {where}; "
                "lower the learning rate or clip gradients (they are counted in "
                "<layer>/nonfinite_* scalars).",
                ReluDoctorWarning,
                stacklevel=2,
            )
        if self.on_dead == "ignore":
            return
        for path, fraction in zip(self.layer_paths, result["dead_fraction"]):
            if fraction > self.dead_threshold and path not in self._warned_dead:
                self._warned_dead.add(path)
                action = "stopping training" if self.on_dead == "stop" else "run `relu-doctor report` for fixes"
                warnings.warn(
                    f"ReluDoctor: layer {path!r} has {fraction:.0%} dead units at {where} "
                    f"(threshold {self.dead_threshold:.0%}); {action}.",
                    ReluDoctorWarning,
                    stacklevel=2,
                )
                if self.on_dead == "stop":
                    self.model.stop_training = True


# --------------------------------------------------------------------- helpers
def _check_probe_structure(probe_data: Any) -> None:
    if isinstance(probe_data, tf.data.Dataset):
        return
    if not isinstance(probe_data, (tuple, list)) or len(probe_data) not in (2, 3):
        raise ValueError(
            "`probe_data` must be a tuple (x, y) or (x, y, sample_weight) of arrays, or a tf.data.Dataset; "
            f"got {type(probe_data).__name__}. Example: probe_data=(x_val[:512], y_val[:512])."
        )
    if probe_data[1] is None:
        raise ValueError("`probe_data` needs targets y to compute gradients: pass (x, y).")


def _fit_validation_data() -> Any:
    """The ``validation_data`` of the ``Model.fit`` call that is running, if any.

    Keras 3 hands callbacks no data; its ``fit`` keeps ``validation_data`` (also
    when made by ``validation_split``) as a local, which we read from the stack.
    """
    frame = sys._getframe(1)
    for _ in range(12):
        frame = frame.f_back
        if frame is None:
            return None
        if frame.f_code.co_name == "fit" and str(frame.f_globals.get("__name__", "")).startswith("keras"):
            return frame.f_locals.get("validation_data")
    return None


def _take_probe(probe_data: Any, probe_size: int) -> tuple[Any, Any, Any]:
    """The first ``probe_size`` samples as tensors ``(x, y, sample_weight)``."""
    if isinstance(probe_data, tf.data.Dataset):
        parts, taken = [], 0
        for element in probe_data:
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element)
            parts.append((x, y, sample_weight))
            taken += _count(x)
            if taken >= probe_size:
                break
        if not parts:
            raise ValueError("`probe_data` is an empty tf.data.Dataset: give it at least one batch.")
        x, y, sample_weight = (_concat([part[i] for part in parts]) for i in range(3))
    else:
        _check_probe_structure(probe_data)
        x, y, sample_weight = (tuple(probe_data) + (None,))[:3]
    if y is None:
        raise ValueError("`probe_data` needs targets y to compute gradients: the dataset yields x only.")
    cut = lambda value: None if value is None else tf.convert_to_tensor(np.asarray(value)[:probe_size])  # noqa: E731
    x, y = keras.tree.map_structure(cut, x), keras.tree.map_structure(cut, y)
    sample_weight = None if sample_weight is None else keras.tree.map_structure(cut, sample_weight)
    return x, y, sample_weight


def _concat(pieces: list[Any]) -> Any:
    """Join batches of one structure (array, dict or list) along the sample axis."""
    if pieces[0] is None:
        return None
    return keras.tree.map_structure(lambda *arrays: np.concatenate([np.asarray(a) for a in arrays], axis=0), *pieces)


def _count(x: Any) -> int:
    first = keras.tree.flatten(x)[0]
    return int(first.shape[0])


def _probe_mismatch(model: keras.Model, x: Any, error: Exception) -> ValueError:
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    return ValueError(
        f"`probe_data` does not fit the model {model.name!r}: {first_line} "
        f"(probe x: {_describe(x)}; model inputs: {_describe_inputs(model)}). "
        "Pass samples shaped like the training data."
    )


def _describe(x: Any) -> str:
    return str(keras.tree.map_structure(lambda t: tuple(t.shape), x))


def _describe_inputs(model: keras.Model) -> str:
    try:
        return str(keras.tree.map_structure(lambda t: tuple(t.shape), model.inputs))
    except (AttributeError, ValueError):
        return "unknown (subclassed model)"


def _private_loss(model: keras.Model) -> Any:
    """A copy of the model's compiled loss, so measuring leaves its metrics alone.

    Calling the model's own compiled loss would update its loss trackers.
    """
    compiled = getattr(model, "_compile_loss", None)
    if compiled is None:
        return None
    from keras.src.trainers.compile_utils import CompileLoss

    return CompileLoss(
        compiled._user_loss,
        compiled._user_loss_weights,
        output_names=getattr(compiled, "output_names", None),
    )


def _unsupported_message(model: keras.Model) -> str:
    return (
        f"ReluDoctor found no layer to measure in {type(model).__name__} {model.name!r}: its call() does not "
        "go through Keras layers. Supported: Sequential, Functional and nested models, and subclassed models "
        "whose call() calls Keras layers (Dense, Conv*, activations, pooling, BatchNormalization...). Wrap the "
        "computation in layers, e.g. keras.Model(inputs, outputs) built from keras.layers."
    )

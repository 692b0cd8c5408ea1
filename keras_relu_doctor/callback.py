"""``ReluDoctor``: the Keras callback that logs liveness, activations and gradients."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import types
import warnings
from typing import Any

import keras
import numpy as np

from keras_relu_doctor import tags
from keras_relu_doctor.errors import UnsupportedModel
from keras_relu_doctor.events.writer import EventWriter, summary_metadata

ON_DEAD_CHOICES = ("warn", "stop", "ignore")
PROBE_MODE_CHOICES = (tags.PROBE_TRAINING, tags.PROBE_INFERENCE)
# The Keras backends the probe runs on (one module each in keras_relu_doctor.probe).
SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")
# The default probe: at most 512 samples, fewer where a sample's layer outputs are
# many, so that one log handles about 2**25 values (a forward and backward pass of
# a few training batches on a CNN at 32x32); never under 64, so that a unit active
# on 5% of samples is seen alive with 96% odds.
MAX_PROBE_SIZE = 512
MIN_AUTO_PROBE_SIZE = 64
PROBE_VALUES_BUDGET = 2**25
# Gradients are taken on the probe's first 32 samples, Keras' default batch
# size: a gradient of the size the optimizer applies, and the memory of one
# training step rather than of the whole probe (liveness needs no backward pass).
GRADIENT_SAMPLES = 32


class ReluDoctorWarning(UserWarning):
    """A layer died, or NaN/Inf appeared, during training."""


class ReluDoctor(keras.callbacks.Callback):
    """Logs per-layer liveness, activations and gradients to TensorBoard.

    Once before the first update (the baseline, step 0) and then at the end of
    every epoch (or every ``update_freq`` batches), the callback runs the
    model on a fixed probe batch and writes, for every layer that computes
    something (weights, an activation, pooling, recurrent, Lambda and custom
    layers): histograms of its outputs, pre-activations and gradients; the
    share of dead, near-dead and zero outputs; gradient, weight and update
    norms; and a per-unit record of how often each unit is active, so
    ``relu-doctor report`` can name the dead units and when each died. Once
    per ``fit`` it also writes the model facts (layers, activations,
    initializers, merges, optimizer, learning rate, loss) and which layers
    were not measured, with the reason. Events go to ``log_dir/train``, where
    Keras' own ``TensorBoard`` callback writes, so both can share a ``log_dir``.

    By default the probe measures the network the optimizer trains:
    BatchNormalization on the probe batch's statistics, Dropout and noise off.
    Measuring never changes training: it takes no optimizer step, and what
    the forward pass would assign (moving statistics, seed generator states)
    is discarded, so weights, optimizer state, BatchNormalization statistics
    and random streams are bit-identical with and without the callback.

    Under a ``tf.distribute`` strategy (the model built in its scope) the
    probe runs on one replica's copy of the weights with the whole probe batch
    on one device, so its numbers are a single-device run's; under
    ``MultiWorkerMirroredStrategy`` only the chief writes events, and every
    worker measures, so that ``on_dead="stop"`` stops all of them alike.

    It runs on Keras' TensorFlow, JAX and PyTorch backends and writes the
    same events on each. On JAX, Keras keeps the training state outside the
    model during an epoch: logging every N batches makes it copy the state
    back into the model every N batches (at epoch ends it does so anyway).

    Steps count updates done: step 0 is the baseline, step N comes after N
    epochs (or N batches with an integer ``update_freq``); a second ``fit``
    with the same callback continues the count.

    Args:
        log_dir: Folder for the event files (``log_dir/train``).
        probe_data: The samples every measurement is taken on: a tuple
            ``(x, y)`` or ``(x, y, sample_weight)`` of arrays (``x`` and ``y``
            may be dicts or lists for multi-input/-output models), a
            ``tf.data.Dataset`` or a ``keras.utils.PyDataset`` yielding such
            tuples, of which the first ``probe_size`` samples are taken.
            Defaults to `None`: the ``validation_data`` (or
            ``validation_split``) of the ``fit`` call.
        probe_size: Number of probe samples kept. Defaults to `None`: chosen
            by the cost of the model, 512 for small models and fewer (not
            under 64) where a sample's layer outputs are many, so that a log
            handles about 2**25 output values (MobileNetV2 at 32x32: 80).
        gradient_samples: How many of the probe samples (the first ones)
            the gradients are taken on; liveness and activations use them
            all. The backward pass holds every layer's output for these
            samples only, so memory follows this number, not the probe.
            `None` takes all. Defaults to `32` (Keras' default batch size:
            the gradient of one training batch).
        probe_mode: ``"training"`` to measure the network the optimizer
            trains (normalisation layers on batch statistics, Dropout off),
            ``"inference"`` to measure the deployed network
            (``model(x, training=False)``: moving statistics). Defaults to
            `"training"`.
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
        loss: The loss to differentiate when the model was compiled without
            one (a custom ``train_step``): a name or a ``keras.losses.Loss``.
            Defaults to `None`: the compiled loss, and no gradients are
            logged (and the logdir says so) when there is none.
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
        probe_size: int | None = None,
        gradient_samples: int | None = GRADIENT_SAMPLES,
        probe_mode: str = tags.PROBE_TRAINING,
        update_freq: str | int = "epoch",
        tolerance: float = 1e-6,
        dead_threshold: float = 0.5,
        on_dead: str = "warn",
        loss: Any = None,
        histogram_buckets: int = tags.DEFAULT_BUCKETS,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        backend = keras.backend.backend()
        if backend not in SUPPORTED_BACKENDS:
            raise UnsupportedModel(
                f"ReluDoctor measures on the {', '.join(SUPPORTED_BACKENDS)} backends; this Keras runs on "
                f"{backend!r} (KERAS_BACKEND={os.environ.get('KERAS_BACKEND', backend)}). Set "
                "KERAS_BACKEND=tensorflow, jax or torch before importing keras."
            )
        if not str(log_dir):
            raise ValueError("`log_dir` must be a folder path, got an empty string.")
        if on_dead not in ON_DEAD_CHOICES:
            raise ValueError(f"`on_dead` must be one of {ON_DEAD_CHOICES}, got on_dead={on_dead!r}.")
        if probe_mode not in PROBE_MODE_CHOICES:
            raise ValueError(f"`probe_mode` must be one of {PROBE_MODE_CHOICES}, got probe_mode={probe_mode!r}.")
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
        if probe_size is not None and (
            isinstance(probe_size, bool) or not (isinstance(probe_size, int) and probe_size > 0)
        ):
            raise ValueError(f"`probe_size` must be None or a positive integer, got probe_size={probe_size!r}.")
        if gradient_samples is not None and (
            isinstance(gradient_samples, bool) or not (isinstance(gradient_samples, int) and gradient_samples > 0)
        ):
            raise ValueError(
                f"`gradient_samples` must be None or a positive integer, got gradient_samples={gradient_samples!r}."
            )
        if isinstance(histogram_buckets, bool) or not (isinstance(histogram_buckets, int) and histogram_buckets > 0):
            raise ValueError(
                f"`histogram_buckets` must be a positive integer, got histogram_buckets={histogram_buckets!r}."
            )
        if loss is not None:
            try:
                keras.losses.get(loss)
            except (ValueError, TypeError) as error:
                raise ValueError(f"`loss` must be a Keras loss name or object, got loss={loss!r} ({error}).") from None
        if probe_data is not None:
            _check_probe_structure(probe_data, "probe_data")
        self.log_dir = os.fspath(log_dir)
        self.probe_data = probe_data
        self.probe_size = probe_size
        self.gradient_samples = gradient_samples
        self.probe_mode = probe_mode
        self.update_freq = update_freq
        self.tolerance = float(tolerance)
        self.dead_threshold = float(dead_threshold)
        self.on_dead = on_dead
        self.loss = loss
        self.histogram_buckets = histogram_buckets
        self.verbose = verbose
        self._writer: EventWriter | _NoEvents | None = None
        self._layout: Any = None
        self._probe: Any = None  # the backend's Probe, built once per fit
        self._entries: list[Any] = []
        self._probe_batch: tuple[Any, Any, Any] | None = None
        self._warned_dead: set[str] = set()
        self._warned_nonfinite = False
        self._fits = 0
        self._epochs_done = 0  # across fits: the step of the last epoch log
        self._epoch_offset = 0
        self._batches_done = 0  # across fits, for models without an optimizer counter
        self._last_step: int | None = None
        self.last_result: dict[str, np.ndarray] = {}
        if update_freq == "epoch":
            # Keras runs training steps ahead of their logs only while no callback
            # has a batch hook of its own: any hook makes it wait for every batch
            # (on MobileNetV2 that cost more than all of ReluDoctor's logging).
            # Logging per epoch needs none, so ours is Keras' own no-op then.
            self.on_train_batch_end = super().on_train_batch_end  # type: ignore[method-assign]

    # ----------------------------------------------------------------- set-up
    @property
    def layer_paths(self) -> list[str]:
        """Tag prefixes of the measured layers, in model order."""
        return [entry.path for entry in self._entries if entry.measured]

    @property
    def not_measured(self) -> dict[str, str]:
        """Layers that are not measured, with the reason (after ``on_train_begin``)."""
        return dict(self._layout.not_measured) if self._layout is not None else {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        from keras_relu_doctor import probe as probe_lib

        fit_arguments = _fit_arguments()
        if self.probe_data is not None:
            probe_data, source = self.probe_data, "probe_data"
        else:
            probe_data, source = fit_arguments.get("validation_data"), "validation_data"
        if probe_data is None:
            raise ValueError(
                "ReluDoctor needs probe samples: pass `probe_data`, e.g. "
                "ReluDoctor(log_dir, probe_data=(x_val[:512], y_val[:512])), "
                "or call fit(..., validation_data=(x_val, y_val))."
            )
        started = time.perf_counter()
        if self.verbose:
            print("ReluDoctor: building the probe (traced once per fit; seconds on large models)...", flush=True)
        x, y, sample_weight = _take_probe(probe_data, self.probe_size or MAX_PROBE_SIZE, source)
        # One sample through the model first: subclassed models build their
        # sublayers (and their weights) on first call.
        y_pred_one = self._call_on_one(x, source)
        self._entries = probe_lib.walk_layers(self.model)
        if not any(entry.measured for entry in self._entries):
            raise UnsupportedModel(_unsupported_message(self.model))
        if self.probe_size is None:
            size = probe_lib.probe_size_for(self.model, self._entries, x, budget=PROBE_VALUES_BUDGET,
                                            smallest=MIN_AUTO_PROBE_SIZE, largest=MAX_PROBE_SIZE)  # fmt: skip
            x, y, sample_weight = (_first(part, size) for part in (x, y, sample_weight))
        loss_fn, gradients_note = self._loss_function()
        if loss_fn is not None:
            # Building creates trackers (variables), which a tf.function must not do.
            loss_fn(keras.tree.map_structure(lambda t: t[:1], y), y_pred_one)
        settings = probe_lib.ProbeSettings(
            tolerance=self.tolerance,
            step_unit=tags.STEP_EPOCH if self.update_freq == "epoch" else tags.STEP_BATCH,
            buckets=self.histogram_buckets,
            mode=self.probe_mode,
            gradient_samples=self.gradient_samples,
        )
        # The last fit's probe goes first: TensorFlow frees its instantiated
        # graph (on MobileNetV2 about 200 MB) only when no one holds it.
        self._release_probe()
        self._probe = probe_lib.build_probe(keras.backend.backend(), self.model, self._entries, loss_fn, settings)
        self._layout = self._probe.layout
        self._probe_batch = (x, y, sample_weight)
        # Compiling now costs the same as at the first log, and tells at once
        # whether the forward pass reached any layer.
        self._probe.build(x, y, sample_weight)
        if not self._layout.reached:
            raise UnsupportedModel(_unsupported_message(self.model))
        if self._writer is None:
            # Every worker measures (so on_dead acts alike on all), only the chief writes.
            chief = keras.backend.backend() != "tensorflow" or probe_lib.writes_summaries(self.model.distribute_strategy)
            self._writer = EventWriter(os.path.join(self.log_dir, tags.TRAIN_SUBDIR)) if chief else _NoEvents()
        self._fits += 1
        step = self._start_step(int(fit_arguments.get("initial_epoch") or 0))
        probe = {
            "mode": self.probe_mode,
            "samples": _count(x),
            "tolerance": self.tolerance,
            "update_freq": self.update_freq,
            "fit": self._fits,
            "first_step": step,
            "gradients": loss_fn is not None,
            "gradient_samples": min(_count(x), self.gradient_samples or _count(x)) if loss_fn is not None else 0,
            "gradients_note": gradients_note,
        }
        self._log(step, where="initialisation (before the first update)", facts=probe)
        if self.verbose:
            print(self._describe(_count(x), time.perf_counter() - started))

    def _loss_function(self) -> tuple[Any, str]:
        """The loss to differentiate, and a note when there is none."""
        if self.loss is not None:
            return _private_loss(self.loss, None), ""
        compiled = getattr(self.model, "_compile_loss", None)
        if compiled is not None:
            return _private_loss(compiled._user_loss, compiled), ""
        note = (
            "not logged: the model was compiled without a loss (a custom train_step?); "
            "pass ReluDoctor(..., loss=...) to log them"
        )
        warnings.warn(
            f"ReluDoctor: gradients {note}.",
            ReluDoctorWarning,
            stacklevel=_user_stacklevel(),
        )
        return None, note

    def _start_step(self, initial_epoch: int) -> int:
        """The baseline step of this fit; later logs continue from it."""
        if self.update_freq == "epoch":
            start = max(self._epochs_done, initial_epoch)
            self._epoch_offset = start - initial_epoch
            return start
        self._batches_start = self._iterations()
        self._batches_seen = 0
        return self._batches_start

    def _iterations(self) -> int:
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        if iterations is None:
            return self._batches_done
        return int(keras.ops.convert_to_numpy(iterations))

    def _describe(self, samples: int, seconds: float) -> str:
        layout = self._layout
        skipped = {path: reason for path, reason in layout.not_measured.items() if reason in tags.QUIET_NOT_MEASURED_REASONS}
        missing = {path: reason for path, reason in layout.not_measured.items() if path not in skipped}
        mode = (
            "training mode: normalisation on batch statistics, Dropout off"
            if self.probe_mode == tags.PROBE_TRAINING
            else "inference mode: model(x, training=False)"
        )
        where = f"events in {os.path.join(self.log_dir, tags.TRAIN_SUBDIR)}"
        if isinstance(self._writer, _NoEvents):
            where = f"no events from this worker (the chief writes its {where})"
        lines = [
            f"ReluDoctor: measuring {len(layout.reached)} of {len(self._entries)} layers on {samples} probe "
            f"samples ({mode}); built and run at step 0 in {seconds:.1f} s; {where}"
        ]
        for path, reason in missing.items():
            lines.append(f"  not measured: {path} ({reason})")
        if skipped:
            lines.append(f"  skipped: {len(skipped)} layers that only reshape, route, merge or drop values")
        return "\n".join(lines)

    def _call_on_one(self, x: Any, source: str) -> Any:
        try:
            return self.model(keras.tree.map_structure(lambda t: t[:1], x), training=False)
        except _shape_errors() as error:
            raise _probe_mismatch(self.model, x, error, source) from error

    # ---------------------------------------------------------------- logging
    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches_done += 1
        if self.update_freq == "epoch" or self._probe is None:
            return
        self._batches_seen += 1
        if self._batches_seen % int(self.update_freq) == 0:
            step = max(self._iterations(), self._batches_start + self._batches_seen)
            self._log(step, where=f"batch {step}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.update_freq == "epoch" and self._probe is not None:
            step = epoch + 1 + self._epoch_offset
            self._epochs_done = step
            self._log(step, where=f"epoch {step}")
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._release_probe()

    def _release_probe(self) -> None:
        if self._probe is not None:
            self._probe.release()
            self._probe = None

    def _log(self, step: int, where: str, facts: dict[str, Any] | None = None) -> None:
        from keras_relu_doctor import probe as probe_lib

        if self._probe is None or self._probe_batch is None:
            return
        if facts is None and step == self._last_step:
            return
        result = self._measure()
        extra = []
        if facts is not None:
            self._recognise_rectifiers(result)
            document = probe_lib.model_facts(self.model, self._entries, self._layout, probe=facts)
            extra.append(
                (
                    tags.MODEL_FACTS,
                    summary_metadata(tags.PLUGIN_NAME, tags.MODEL_FACTS_CONTENT),
                    np.array(tags.encode_facts(document), dtype=object),
                )
            )
        learning_rate = probe_lib.current_learning_rate(getattr(self.model, "optimizer", None))
        if learning_rate is not None:
            extra.append(
                (tags.LEARNING_RATE, summary_metadata(tags.SCALARS_PLUGIN), np.array(learning_rate, np.float32))
            )
        if facts is None or step != self._last_step:
            probe_lib.write_probe(self._writer, self._layout, result, step, extra=extra, baseline=facts is not None)
        else:
            # A second fit starts where the first ended: that step is logged already.
            self._writer.summaries(step, extra)
        self._last_step = step
        self.last_result = result
        self._check(result, where)

    def _measure(self) -> dict[str, Any]:
        """One run of the compiled probe on the probe batch, as numpy arrays."""
        return self._probe(*self._probe_batch)

    def _recognise_rectifiers(self, result: dict[str, np.ndarray]) -> None:
        """Name the activation of layers that do not say theirs (Lambda, custom) from their output.

        Never negative with exact zeros: a rectifier. Read on the baseline,
        from the activation histogram, whose left edge is the exact minimum.
        """
        from keras_relu_doctor.probe.layers import SOURCE_OUTPUT

        layout = self._layout
        histogram_rows = {tag: index for index, tag in enumerate(layout.histogram_tags)}
        opaque = {entry.path for entry in self._entries if entry.opaque}
        for path, metadata in list(layout.metadata.items()):
            # Pooling and BatchNorm after a ReLU are never negative either: only
            # layers that do not say what they compute are read from their output.
            if metadata.activation or path not in opaque:
                continue
            row = histogram_rows.get(tags.tag(path, tags.ACTIVATIONS))
            if row is None:
                continue
            buckets = result["histograms"][row]
            if buckets[:, 2].sum() > 0 and float(buckets[0, 0]) == 0.0:
                layout.metadata[path] = dataclasses.replace(
                    metadata, activation="relu", activation_source=SOURCE_OUTPUT
                )

    def _check(self, result: dict[str, np.ndarray], where: str) -> None:
        paths = self.layer_paths
        if result["nonfinite"].sum() > 0 and not self._warned_nonfinite:
            self._warned_nonfinite = True
            bad = [p for p, n in zip(paths, result["nonfinite"]) if n > 0]
            warnings.warn(
                f"ReluDoctor: NaN/Inf in the activations or gradients of {', '.join(bad)} at {where}; "
                "lower the learning rate or clip gradients (they are counted in "
                "<layer>/nonfinite_* scalars).",
                ReluDoctorWarning,
                stacklevel=_user_stacklevel(),
            )
        if self.on_dead == "ignore":
            return
        rectifiers = {path for path, meta in self._layout.metadata.items() if meta.activation in tags.RECTIFIERS}
        for path, fraction in zip(paths, result["dead_fraction"]):
            if path not in rectifiers:
                continue  # only a rectifier dies; a linear layer fed zeros outputs zeros
            if fraction > self.dead_threshold and path not in self._warned_dead:
                self._warned_dead.add(path)
                action = "stopping training" if self.on_dead == "stop" else "run `relu-doctor report` for fixes"
                warnings.warn(
                    f"ReluDoctor: layer {path!r} has {fraction:.0%} dead units at {where} "
                    f"(threshold {self.dead_threshold:.0%}); {action}.",
                    ReluDoctorWarning,
                    stacklevel=_user_stacklevel(),
                )
                if self.on_dead == "stop":
                    self.model.stop_training = True


# --------------------------------------------------------------------- helpers
class _NoEvents:
    """The writer of a worker that is not the chief of a multi-worker strategy: it writes nothing."""

    def summaries(self, step: int, values: list[tuple]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


_LIBRARY_MODULES = ("keras", "tensorflow", "jax", "jaxlib", "torch", "keras_relu_doctor", "absl")


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the user's line (their ``fit`` call).

    Counted from the caller of ``warnings.warn``: frames of Keras, TensorFlow and
    this package are skipped.
    """
    frame = sys._getframe(2)  # the function that calls warnings.warn
    level = 2
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".")[0] not in _LIBRARY_MODULES:
            return level
        frame = frame.f_back
        level += 1
    return 2


def _is_tf_dataset(value: Any) -> bool:
    tf = sys.modules.get("tensorflow")  # not imported: the value cannot be a tf.data.Dataset
    return tf is not None and isinstance(value, tf.data.Dataset)


def _shape_errors() -> tuple[type[Exception], ...]:
    """What a model raises when its input does not fit it, on the active backend."""
    tf = sys.modules.get("tensorflow")
    return (ValueError, TypeError, RuntimeError) + ((tf.errors.InvalidArgumentError,) if tf is not None else ())


def _check_probe_structure(probe_data: Any, source: str) -> None:
    if _is_tf_dataset(probe_data) or isinstance(probe_data, keras.utils.PyDataset):
        return
    if isinstance(probe_data, types.GeneratorType) or (
        hasattr(probe_data, "__next__") and not isinstance(probe_data, (tuple, list))
    ):
        raise ValueError(
            f"ReluDoctor cannot take probe samples from the generator passed as `{source}`: reading it would "
            "consume batches that fit needs. Pass probe_data=(x_val[:512], y_val[:512]), a tf.data.Dataset "
            "or a keras.utils.PyDataset."
        )
    if not isinstance(probe_data, (tuple, list)) or len(probe_data) not in (2, 3):
        raise ValueError(
            f"`{source}` must be a tuple (x, y) or (x, y, sample_weight) of arrays, a tf.data.Dataset or a "
            f"keras.utils.PyDataset for ReluDoctor to probe; got {type(probe_data).__name__}. "
            "Example: ReluDoctor(log_dir, probe_data=(x_val[:512], y_val[:512]))."
        )
    if probe_data[1] is None:
        raise ValueError(f"`{source}` needs targets y for ReluDoctor to compute gradients: pass (x, y).")


# Keras' fit keeps these as locals; callbacks are handed none of them.
_FIT_ARGUMENTS = ("validation_data", "initial_epoch", "steps_per_epoch")


def _fit_arguments() -> dict[str, Any]:
    """``validation_data`` (also when made by ``validation_split``) and ``initial_epoch`` of the running fit.

    Keras 3 hands callbacks no data; its ``fit`` keeps them as locals, which
    are read from the stack. Empty outside ``fit`` (a callback driven by hand).
    """
    frame = sys._getframe(1)
    for _ in range(12):
        frame = frame.f_back
        if frame is None:
            return {}
        if frame.f_code.co_name == "fit" and str(frame.f_globals.get("__name__", "")).startswith("keras"):
            return {name: frame.f_locals.get(name) for name in _FIT_ARGUMENTS}
    return {}


def _batches(probe_data: Any) -> Any:
    """The batches of a dataset, without consuming anything fit will read."""
    if isinstance(probe_data, keras.utils.PyDataset):
        count = probe_data.num_batches
        index = 0
        while count is None or index < count:
            try:
                yield probe_data[index]
            except IndexError:
                return
            index += 1
        return
    yield from probe_data


def _take_probe(probe_data: Any, probe_size: int, source: str) -> tuple[Any, Any, Any]:
    """The first ``probe_size`` samples as tensors of the active backend ``(x, y, sample_weight)``."""
    _check_probe_structure(probe_data, source)
    if _is_tf_dataset(probe_data) or isinstance(probe_data, keras.utils.PyDataset):
        kind = type(probe_data).__name__
        parts, taken = [], 0
        for element in _batches(probe_data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element)
            if y is None:
                raise ValueError(
                    f"the {kind} passed as `{source}` yields x only; ReluDoctor needs targets y to compute "
                    "gradients: make it yield (x, y) batches."
                )
            parts.append((x, y, sample_weight))
            taken += _count(x)
            if taken >= probe_size:
                break
        if not parts:
            raise ValueError(f"the {kind} passed as `{source}` is empty: give it at least one batch.")
        x, y, sample_weight = (_concat([part[i] for part in parts]) for i in range(3))
    else:
        x, y, sample_weight = (tuple(probe_data) + (None,))[:3]
    cut = lambda value: None if value is None else keras.ops.convert_to_tensor(np.asarray(value)[:probe_size])  # noqa: E731
    x, y = keras.tree.map_structure(cut, x), keras.tree.map_structure(cut, y)
    sample_weight = None if sample_weight is None else keras.tree.map_structure(cut, sample_weight)
    return x, y, sample_weight


def _first(part: Any, size: int) -> Any:
    """The first ``size`` samples of a probe part (a tensor structure, or None)."""
    return None if part is None else keras.tree.map_structure(lambda tensor: tensor[:size], part)


def _concat(pieces: list[Any]) -> Any:
    """Join batches of one structure (array, dict or list) along the sample axis."""
    if pieces[0] is None:
        return None
    return keras.tree.map_structure(lambda *arrays: np.concatenate([np.asarray(a) for a in arrays], axis=0), *pieces)


def _count(x: Any) -> int:
    first = keras.tree.flatten(x)[0]
    return int(first.shape[0])


def _probe_mismatch(model: keras.Model, x: Any, error: Exception, source: str) -> ValueError:
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    return ValueError(
        f"`{source}` does not fit the model {model.name!r}: {first_line} "
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


def _private_loss(loss: Any, compiled: Any) -> Any:
    """A copy of the compiled loss (or of ``loss``), so measuring leaves the model's metrics alone.

    Calling the model's own compiled loss would update its loss trackers.
    """
    from keras.src.trainers.compile_utils import CompileLoss

    if compiled is None:
        return CompileLoss(loss, None)
    return CompileLoss(
        loss,
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

"""The Keras backend a replay trains on, and one thread per worker on each. No framework imported at module level.

``relu-doctor replay --backend NAME`` (default: ``KERAS_BACKEND``, else tensorflow)
picks it; :func:`resolve_backend` checks the name and that its package is installed,
and :func:`configure_worker` prepares a process that trains: ``KERAS_BACKEND`` set
before Keras is imported, and the framework held to one thread, so ``--jobs N`` workers
on N cores do not oversubscribe them and single-threaded kernels give the same numbers
each time.

TensorFlow is imported on every backend: Keras' ``TensorBoard`` callback, which writes
each run's loss curves, writes them with ``tf.summary``.

>>> resolve_backend("tensorflow")
'tensorflow'
>>> resolve_backend("numpy")
Traceback (most recent call last):
...
keras_relu_doctor.errors.BadOption: unknown backend 'numpy': use one of tensorflow, jax, torch
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from keras_relu_doctor.errors import BadOption

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
# The modules each backend needs (TensorFlow for Keras' TensorBoard callback on all of them),
# and the extra of setup.cfg that installs them.
NEEDS = {
    "tensorflow": ("tensorflow",),
    "jax": ("jax", "jaxlib", "tensorflow"),
    "torch": ("torch", "tensorflow"),
}
EXTRAS = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch-cpu", "jaxlib": "jax"}


def resolve_backend(name: str | None = None) -> str:
    """``name``, else ``KERAS_BACKEND``, else tensorflow; a one-line error if it is unknown or not installed."""
    chosen = name or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if chosen not in BACKENDS:
        source = "" if name else f" (KERAS_BACKEND={chosen})"
        raise BadOption(f"unknown backend {chosen!r}{source}: use one of {', '.join(BACKENDS)}")
    for module in NEEDS[chosen]:
        if importlib.util.find_spec(module) is None:
            extra = EXTRAS.get(module, EXTRAS[chosen])
            raise BadOption(
                f"the {chosen} backend needs {module}, which is not installed: pip install 'keras-relu-doctor[{extra}]'"
            )
    return chosen


def keras_backend_in_process() -> str | None:
    """The backend of the Keras already imported in this process; None if Keras is not imported yet."""
    keras = sys.modules.get("keras")
    return keras.config.backend() if keras is not None else None


def configure_worker(backend: str = DEFAULT_BACKEND) -> None:
    """Once per training process, before Keras is imported: ``KERAS_BACKEND``, one thread, quiet logs."""
    imported = keras_backend_in_process()
    if imported is not None and imported != backend:
        raise BadOption(f"Keras already runs on {imported} in this process, not {backend}: train in a new process")
    os.environ["KERAS_BACKEND"] = backend
    # 3: TensorFlow's C++ errors too (version notes about graph attributes); Python errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if backend == "jax":
        _one_jax_thread()
    elif backend == "torch":
        _one_torch_thread()
        # Keras' torch backend imports triton (torch._dynamo), whose library crashes the
        # process (SIGSEGV) when it loads after TensorFlow's: Keras first, TensorFlow second.
        import keras  # noqa: F401
    _one_tensorflow_thread(import_tensorflow_quietly())


def _one_tensorflow_thread(tf: Any) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran in this process (in-process runs)
        pass


def _one_jax_thread() -> None:
    """JAX's CPU client with a one-thread pool.

    XLA sizes the pool from the cores this process may run on when the client is made
    (``--xla_cpu_multi_thread_eigen=false`` in ``XLA_FLAGS`` no longer changes it), so
    the client is made while the process may use one core; then every core is allowed
    again, for the one thread to run on any of them.
    """
    if "jax" in sys.modules or not hasattr(os, "sched_setaffinity"):  # in-process runs; not Linux
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        import jax

        jax.devices("cpu")
    finally:
        os.sched_setaffinity(0, allowed)


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # torch already ran parallel work in this process (in-process runs)
        pass


def import_tensorflow_quietly() -> Any:
    """``import tensorflow`` with its start-up lines kept off stderr.

    TensorFlow's C++ side logs notices (oneDNN, CPU features) through absl
    before ``TF_CPP_MIN_LOG_LEVEL`` is read, so every worker would print them.
    File descriptor 2 points at /dev/null during the import only; an import
    error is raised after it is restored, so it is still shown.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf

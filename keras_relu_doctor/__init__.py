"""keras_relu_doctor: find units that stopped learning in Keras models, and say why.

The callback needs TensorFlow and is imported lazily, so the report path
(``read_logdir``, ``build_report``, the renderers) never imports it.

>>> import keras_relu_doctor
>>> keras_relu_doctor.__version__
'0.1.0'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access.
_LAZY = {
    "ReluDoctor": "keras_relu_doctor.callback",
    "read_logdir": "keras_relu_doctor.events",
    "build_report": "keras_relu_doctor.report",
}

if TYPE_CHECKING:  # pragma: no cover
    from keras_relu_doctor.callback import ReluDoctor
    from keras_relu_doctor.events import read_logdir
    from keras_relu_doctor.report import build_report


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'keras_relu_doctor' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["ReluDoctor", "__version__", "build_report", "read_logdir"]

"""Reading TensorBoard event files without TensorFlow: framing, protos, series.

>>> from keras_relu_doctor.events import read_logdir
>>> logdir = read_logdir("runs/experiment")  # doctest: +SKIP
>>> [run.path for run in logdir.runs]  # doctest: +SKIP
['train', 'validation']
"""

from keras_relu_doctor.events.logdir import find_runs, iter_runs, read_logdir
from keras_relu_doctor.events.series import HistogramSeries, Logdir, Run, ScalarSeries, UnitsSeries

__all__ = [
    "HistogramSeries",
    "Logdir",
    "Run",
    "ScalarSeries",
    "UnitsSeries",
    "find_runs",
    "iter_runs",
    "read_logdir",
]

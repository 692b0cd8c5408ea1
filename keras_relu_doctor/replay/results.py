"""What one run measured: the record every later stage (summary, claims) reads.

No TensorFlow here: results are read back from ``result.json`` in the main process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from keras_relu_doctor.replay.grid import RunSpec

SCHEMA_VERSION = 1
# A layer with more than this share of dead units counts as dead, as the report's
# default ``dead_threshold`` decides it (SageMaker's dead_relu and TheDeepChecker flag >50%).
DEAD_LAYER_FRACTION = 0.5


@dataclass(frozen=True)
class RunResult:
    """What one run measured, plus (after the report) the report's reading of it.

    ``dead_first``/``dead_last``: per hidden layer, share of units active on no
    probe sample after the first / last epoch, measured on the model directly.
    ``verdict`` and ``gradient_status`` come from ``build_report`` on the run's
    events and are empty until :func:`keras_relu_doctor.replay.summary.attach_report`.

    >>> result = RunResult(spec=RunSpec("relu", "he_normal", 1, 0), dead_first={"dense_1": 0.0},
    ...                    dead_last={"dense_1": 0.75}, train_loss=(0.5, 0.1), val_loss=(0.4, 0.1),
    ...                    baseline_val_loss=0.6)
    >>> result.died, round(result.loss_ratio, 3)
    (True, 0.167)
    """

    spec: RunSpec
    dead_first: dict[str, float]
    dead_last: dict[str, float]
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    baseline_val_loss: float
    seconds: float = 0.0
    verdict: str = ""
    gradient_status: str = ""
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def died(self) -> bool:
        """Some hidden layer had more than half of its units dead at the last epoch."""
        return max(self.dead_last.values(), default=0.0) > DEAD_LAYER_FRACTION

    @property
    def loss_ratio(self) -> float:
        """Final validation loss over the baseline (always predicting the mean): 1 = learnt nothing."""
        return self.val_loss[-1] / self.baseline_val_loss if self.baseline_val_loss else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunResult:
        fields = {key: value for key, value in raw.items() if key != "schema"}
        fields["spec"] = RunSpec(**fields["spec"])
        for key in ("train_loss", "val_loss", "problems"):
            fields[key] = tuple(fields.get(key, ()))
        return cls(**fields)


def network_dead_fraction(per_layer: dict[str, float]) -> float:
    """Share of all hidden units that are dead (layers have equal widths).

    >>> network_dead_fraction({"dense_1": 0.0, "dense_2": 1.0, "dense_3": 1.0})
    0.6666666666666666
    """
    return sum(per_layer.values()) / len(per_layer) if per_layer else 0.0

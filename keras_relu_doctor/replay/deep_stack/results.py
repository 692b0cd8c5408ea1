"""What one deep-stack run measured, and the report's reading of it. No TensorFlow.

>>> from keras_relu_doctor.replay.deep_stack.grid import StackSpec
>>> run = StackResult(StackSpec("sigmoid", 8), (2.3, 2.3), (2.3, 2.3), (0.1, 0.1), chance_accuracy=0.1)
>>> run.trains, run.learnt_nothing
(False, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from keras_relu_doctor.replay.deep_stack.grid import StackSpec

SCHEMA_VERSION = 1
# "Trains": final validation accuracy at least 3x chance (0.3 for 10 classes);
# "learnt nothing": at most 2x chance. In between: learning, slowly.
TRAINS_OVER_CHANCE = 3.0
NOTHING_OVER_CHANCE = 2.0


@dataclass(frozen=True)
class StackResult:
    """Losses and accuracies per epoch; after the report, its verdict and gradients.

    ``grad_norms``: the report's last gradient norm of each convolution
    (``stem``, ``block1_conv1``, ...), in model order; ``vanishing_layers``:
    the layers of the report's ``vanishing_gradients`` finding.
    """

    spec: StackSpec
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    val_accuracy: tuple[float, ...]
    chance_accuracy: float
    seconds: float = 0.0
    verdict: str = ""
    problems: tuple[str, ...] = ()
    grad_norms: tuple[float | None, ...] = ()
    vanishing_layers: tuple[str, ...] = ()

    @property
    def accuracy(self) -> float:
        return self.val_accuracy[-1] if self.val_accuracy else float("nan")

    @property
    def diverged(self) -> bool:
        """The loss went NaN/Inf, or ended above what a uniform guess scores (log 10) by 10x."""
        last = self.train_loss[-1] if self.train_loss else float("nan")
        return not math.isfinite(last) or last > 10 * math.log(1 / self.chance_accuracy)

    @property
    def trains(self) -> bool:
        return not self.diverged and self.accuracy >= TRAINS_OVER_CHANCE * self.chance_accuracy

    @property
    def learnt_nothing(self) -> bool:
        return self.diverged or not self.accuracy > NOTHING_OVER_CHANCE * self.chance_accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StackResult:
        fields = {key: value for key, value in raw.items() if key != "schema"}
        fields["spec"] = StackSpec(**fields["spec"])
        for key in ("train_loss", "val_loss", "val_accuracy", "problems", "grad_norms", "vanishing_layers"):
            fields[key] = tuple(fields.get(key, ()))
        return cls(**fields)

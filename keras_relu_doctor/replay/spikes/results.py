"""What one loss-spikes run measured, and the report's reading of it. No TensorFlow.

Unit counts are over the rectified layers (``conv1``, ``conv2``, ``dense``; their
PReLU layers in the PReLU setting), as the report counts them.

>>> from keras_relu_doctor.replay.spikes.grid import SpikeSpec
>>> run = SpikeResult(SpikeSpec(), (1.0,), (0.9,), dead_units=12, dead_at_start=2)
>>> run.new_deaths
10
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from keras_relu_doctor.replay.spikes.grid import SpikeSpec

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SpikeResult:
    """Losses and accuracies per epoch; after the report: its verdict, the loss spikes it found
    (steps are batches), units that died at them, dead and near-dead units at the end and at
    the first log (``dead_at_start``: dead at the end and already at the first log), the step of
    the first unit that died for good in training, and the pooled features' share of zeros
    (mean over the last quarter of logs)."""

    spec: SpikeSpec
    train_loss: tuple[float, ...]
    val_accuracy: tuple[float, ...]
    seconds: float = 0.0
    verdict: str = ""
    problems: tuple[str, ...] = ()
    spike_steps: tuple[int, ...] = ()
    deaths_at_spikes: int = 0
    dead_units: int = 0
    near_dead_units: int = 0
    dead_at_start: int = 0
    units: int = 0
    first_death: int | None = None
    pool_zero_share: float | None = None

    @property
    def accuracy(self) -> float:
        return self.val_accuracy[-1] if self.val_accuracy else float("nan")

    @property
    def new_deaths(self) -> int:
        """Units dead at the end that were alive at the first log."""
        return max(self.dead_units - self.dead_at_start, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SpikeResult:
        fields = {key: value for key, value in raw.items() if key != "schema"}
        fields["spec"] = SpikeSpec(**fields["spec"])
        for key in ("train_loss", "val_accuracy", "problems", "spike_steps"):
            fields[key] = tuple(fields.get(key, ()))
        return cls(**fields)

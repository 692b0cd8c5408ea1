"""What a rule returns: a finding, with the numbers behind it and ranked fixes.

>>> Finding(kind=DYING_RELU, layer="dense", severity=ERROR, onset_step=3, units=(0, 2)).problem
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# Kinds that can be a run's verdict, most serious first: explosion destroys
# everything downstream; dead units stop learning for good; saturation and
# vanishing gradients slow it down (and saturation often causes the vanishing).
EXPLODING_GRADIENTS = "exploding_gradients"
DYING_RELU = "dying_relu"
SATURATION = "saturation"
VANISHING_GRADIENTS = "vanishing_gradients"
# A loss that never leaves the constant predictor's: the model learnt nothing,
# whatever its layers look like.
LOSS_AT_CHANCE = "loss_at_chance"
VERDICT_KINDS = (EXPLODING_GRADIENTS, DYING_RELU, SATURATION, VANISHING_GRADIENTS, LOSS_AT_CHANCE)
HEALTHY = "healthy"
NO_DATA = "no_data"
VERDICTS = (HEALTHY, *VERDICT_KINDS, NO_DATA)

# Loss-curve kinds: evidence about training, never a verdict on their own
# (except LOSS_AT_CHANCE, above).
LOSS_PLATEAU = "loss_plateau"
LOSS_SPIKES = "loss_spikes"
LOSS_OSCILLATION = "loss_oscillation"
LOSS_KINDS = (LOSS_PLATEAU, LOSS_SPIKES, LOSS_OSCILLATION)
KINDS = (*VERDICT_KINDS, *LOSS_KINDS)

INFO = "info"
WARNING = "warning"
ERROR = "error"
SEVERITIES = (INFO, WARNING, ERROR)


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem.

    ``layer`` is the layer it is about (for a run-wide gradient finding, the one
    nearest the input; ``""`` for the loss curve). ``units`` are unit indices,
    ``evidence`` the numbers behind it (JSON-ready), ``fixes`` ranked, best first.
    """

    kind: str
    layer: str
    severity: str
    onset_step: int | None
    units: tuple[int, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    fixes: tuple[str, ...] = ()
    summary: str = ""

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers it is about: those its evidence lists, else its own layer (none for the loss curve).

        >>> Finding("vanishing_gradients", "d0", "warning", 0, evidence={"layers": ["d0", "d1"]}).layers
        ('d0', 'd1')
        """
        listed = tuple(str(name) for name in self.evidence.get("layers", ()))
        return listed or ((self.layer,) if self.layer else ())

    @property
    def problem(self) -> bool:
        """True when the finding makes the run unhealthy (``info`` findings do not)."""
        return self.severity != INFO

"""The remedies the report can recommend, each with a source a reader can look up.

A rule picks and orders them from its evidence with :func:`ranked`; then
:func:`tailor` reads the model facts the callback wrote and drops what the
model already has (BatchNorm before the activation, residual shortcuts, He
initialisation, LeakyReLU, gradient clipping) and moves the learning rate first
when the optimizer's is high.

>>> ranked("lower_lr", "normalization")[0].startswith("Lower the learning rate")
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from keras_relu_doctor.tags import facts_layers

# Each fix: what to do, then where the advice comes from, in words a reader can find.
FIXES = {
    "lower_lr": "Lower the learning rate, add warmup (lr*step/1000 over the first 1000 steps)"
    " and decay it (step, cosine, reduce-on-plateau): large updates overshoot, spike the loss"
    " and push units below zero for good (Goyal et al. 2017, warmup; Loshchilov & Hutter 2017,"
    " cosine decay)",
    "normalization": "Add a normalisation layer (BatchNorm, GroupNorm or L2Norm) before the"
    " activation, to keep pre-activations in range (Ioffe & Szegedy 2015, Batch Normalization)",
    "normalize_inputs": "Normalise the inputs to zero mean and unit variance: inputs all of one"
    " sign push every pre-activation below zero (Jayan 2019, \"Is ReLU Dead?\"; LeCun et al."
    " 1998, \"Efficient BackProp\")",
    "initializer": "Replace the initializer with he_normal/he_uniform and a zero bias; weights of"
    " one sign (e.g. uniform(-1, 0)) or too large kill or saturate units (He et al. 2015,"
    " \"Delving Deep into Rectifiers\")",
    "he_init": "Initialise ReLU layers with he_normal or he_uniform (He et al. 2015, \"Delving"
    " Deep into Rectifiers\")",
    "leaky_relu": "Use LeakyReLU or PReLU so a negative input still passes a gradient; units may"
    " then sit near-dead at ~1e-7 instead of 0 (Maas et al. 2013, leaky rectifiers; He et al."
    " 2015, PReLU)",
    "selu": "Use SELU with lecun_normal initialisation and AlphaDropout (Klambauer et al. 2017,"
    " \"Self-Normalizing Neural Networks\")",
    "residual": "Add residual shortcuts so gradients reach the early layers (He et al. 2016,"
    " \"Deep Residual Learning\")",
    "relu_family": "In deep stacks use ReLU-family activations instead of sigmoid/tanh, whose"
    " slope is at most 0.25/1 and vanishes at the bounds (Glorot & Bengio 2010)",
    "clip_gradients": "Clip gradients (clipnorm=1.0); this stops explosion but does not cure"
    " vanishing gradients (Pascanu et al. 2013, \"On the difficulty of training recurrent"
    " neural networks\")",
    "check_data": "Check data and labels first, and that the model can overfit one batch"
    " (Karpathy 2019, \"A Recipe for Training Neural Networks\")",
    "lr_decay": "Decay the learning rate towards the end of training (step, exponential, cosine"
    " or reduce-on-plateau): mini-batch noise makes a large step oscillate (Loshchilov &"
    " Hutter 2017, SGDR)",
}
KEY_OF_FIX = {text: key for key, text in FIXES.items()}

# Learning rates above these are high for the optimizer family: ten times the
# safe defaults (Adam 3e-4: Karpathy 2019; plain SGD 0.01 for Keras' default).
HIGH_ADAPTIVE_LR = 3e-3
HIGH_SGD_LR = 0.1
ADAPTIVE_OPTIMIZERS = ("Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adadelta", "Lion", "Lamb", "Adafactor", "Ftrl")  # fmt: skip
HE_INITIALIZERS = ("HeNormal", "HeUniform")
SLOPED_ACTIVATIONS = ("leaky_relu", "prelu", "elu", "selu", "gelu", "silu", "swish", "mish", "celu", "softplus")
RELU_FAMILY = ("relu", "relu6", *SLOPED_ACTIVATIONS)


def ranked(*keys: str) -> tuple[str, ...]:
    """The fix texts for ``keys``, in that order, without repeats."""
    return tuple(FIXES[key] for key in dict.fromkeys(keys))


@dataclass(frozen=True)
class ModelContext:
    """What the model facts say that changes which fixes apply; empty without facts.

    >>> ModelContext.from_facts(None).high_learning_rate
    False
    """

    layers: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    residual: bool = False
    clipped: bool = False
    learning_rate: float | None = None
    optimizer: str = ""

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any] | None) -> ModelContext:
        if not facts:
            return cls()
        layers = facts_layers(facts)
        merges = [merge for merge in facts.get("merges", ()) if isinstance(merge, Mapping)]
        optimizer = facts.get("optimizer") if isinstance(facts.get("optimizer"), Mapping) else {}
        rate = optimizer.get("learning_rate")
        return cls(
            layers=layers,
            residual=any(merge.get("class") in ("Add", "Average") for merge in merges),
            clipped=any(optimizer.get(name) for name in ("clipnorm", "clipvalue", "global_clipnorm")),
            learning_rate=float(rate) if isinstance(rate, (int, float)) else None,
            optimizer=str(optimizer.get("class", "")),
        )

    @property
    def high_learning_rate(self) -> bool:
        """The optimizer's learning rate is ten times its family's safe default or more."""
        if self.learning_rate is None:
            return False
        limit = HIGH_ADAPTIVE_LR if self.optimizer in ADAPTIVE_OPTIMIZERS else HIGH_SGD_LR
        return self.learning_rate >= limit

    def already_has(self, key: str, layers: Iterable[str]) -> bool:
        """True when the model already has what fix ``key`` recommends, or makes it moot, for every one of ``layers``."""
        facts = [self.layers[name] for name in layers if name in self.layers]
        if key == "residual":
            return self.residual
        if key == "clip_gradients":
            return self.clipped
        if not facts:
            return False
        if key in ("normalization", "normalize_inputs", "selu"):
            # With a normalisation layer right before the activation, the model's input
            # scale no longer reaches it, and SELU's self-normalisation has nothing to add.
            if all(layer.get("normalized_before_activation") for layer in facts):
                return True
            if key == "normalization":
                return False
        if key in ("he_init", "initializer"):
            return all(_kernel_initializer(layer) in HE_INITIALIZERS for layer in facts)
        if key == "leaky_relu":
            return all(layer.get("activation") in SLOPED_ACTIVATIONS for layer in facts)
        if key == "selu":
            return all(layer.get("activation") == "selu" for layer in facts)
        if key == "relu_family":
            return all(layer.get("activation") in RELU_FAMILY for layer in facts)
        return False


def _kernel_initializer(layer: Mapping[str, Any]) -> str:
    initializers = layer.get("initializers") or {}
    for name in ("kernel_initializer", "depthwise_initializer", "pointwise_initializer"):
        if isinstance(initializers.get(name), Mapping):
            return str(initializers[name].get("class", ""))
    return ""


def with_learning_rate(fix: str, context: ModelContext) -> str:
    """The learning-rate fix with the optimizer's own rate when it is high.

    >>> with_learning_rate(FIXES["lower_lr"], ModelContext(learning_rate=1.0, optimizer="Adam")).split(",")[0]
    'Lower the learning rate (Adam runs at 1; 0.0003 is a safe start)'
    """
    if fix != FIXES["lower_lr"] or not context.high_learning_rate:
        return fix
    safe = 3e-4 if context.optimizer in ADAPTIVE_OPTIMIZERS else 1e-2
    head, _, rest = fix.partition(",")
    return f"{head} ({context.optimizer or 'the optimizer'} runs at {context.learning_rate:g}; {safe:g} is a safe start),{rest}"


def tailor(fixes: tuple[str, ...], layers: Iterable[str], context: ModelContext, *, lr_first: bool = False) -> tuple[str, ...]:
    """``fixes`` without what the model already has for ``layers``; the learning rate first when asked.

    >>> context = ModelContext(residual=True)
    >>> [KEY_OF_FIX[fix] for fix in tailor(ranked("normalization", "residual"), ["dense"], context)]
    ['normalization']
    """
    layers = list(layers)
    keys = [KEY_OF_FIX[fix] for fix in fixes if fix in KEY_OF_FIX]
    keys = [key for key in keys if not context.already_has(key, layers)]
    if lr_first:
        keys = ["lower_lr", *[key for key in keys if key != "lower_lr"]]
    return tuple(with_learning_rate(fix, context) for fix in ranked(*keys))

"""The remedies the report can recommend, each traced to the seed it comes from.

A rule picks and orders them from its evidence with :func:`ranked`.

>>> ranked("lower_lr", "normalization")[0].startswith("Lower the learning rate")
True
"""

from __future__ import annotations

FIXES = {
    "lower_lr": "Lower the learning rate, add warmup (lr*step/1000 over the first 1000 steps)"
    " and decay it (step, cosine, reduce-on-plateau) [seeds 000, 002]",
    "normalization": "Add a normalisation layer (BatchNorm, GroupNorm or L2Norm) before the"
    " activation, to keep pre-activations in range [seeds 000, 002, 003]",
    "normalize_inputs": "Normalise the inputs to zero mean and unit variance: inputs all of one"
    " sign push every pre-activation below zero [seeds 001, 004]",
    "initializer": "Replace the initializer with he_normal/he_uniform and a zero bias; weights of"
    " one sign (e.g. uniform(-1, 0)) or too large kill or saturate units [seeds 001, 003]",
    "he_init": "Initialise ReLU layers with he_normal or he_uniform [seed 001]",
    "leaky_relu": "Use LeakyReLU or PReLU so a negative input still passes a gradient (units"
    " may then sit near-dead at ~1e-7 instead of 0) [seeds 000, 001]",
    "selu": "Use SELU with lecun_normal initialisation and AlphaDropout [seed 001]",
    "residual": "Add residual shortcuts so gradients reach the early layers [seed 003]",
    "relu_family": "In deep stacks use ReLU-family activations instead of sigmoid/tanh: sigmoid"
    " stacks stop training past ~7 blocks [seed 003]",
    "clip_gradients": "Clip gradients (clipnorm=1.0); this stops explosion but does not cure"
    " vanishing gradients [seed 003]",
    "check_data": "Check data and labels first, and that the model can overfit one batch"
    " [seeds 000, 004]",
    "lr_decay": "Decay the learning rate towards the end of training (step, exponential, cosine"
    " or reduce-on-plateau) [seed 002]",
}


def ranked(*keys: str) -> tuple[str, ...]:
    """The fix texts for ``keys``, in that order, without repeats."""
    return tuple(FIXES[key] for key in dict.fromkeys(keys))

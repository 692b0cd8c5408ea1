"""Reading other tools' tags: which layer a histogram belongs to and what it holds.

PyTorch's ``torch.utils.tensorboard`` and tensorboardX users name their
histograms freely (``activations/relu_1``, ``relu_1/output``,
``gradients/0.weight``, ``fc1.weight.grad``); Keras' ``TensorBoard`` callback
writes weights as ``<layer>/<weight>/histogram``; TF1's ``write_grads`` wrote
``<layer>/<weight>_grad``. The role is read from the tag's words in any
position, the layer is what remains. Our own tags are parsed by
:mod:`keras_relu_doctor.tags` before this is asked.

>>> tag_role("activations/relu_1"), tag_role("fc1.weight.grad"), tag_role("dense/kernel/histogram")
(('relu_1', 'activations', ''), ('fc1', 'gradients', 'weight'), ('dense', 'weights', 'kernel'))
"""

from __future__ import annotations

import re

ACTIVATIONS = "activations"
GRADIENTS = "gradients"
WEIGHTS = "weights"
ROLES = (ACTIVATIONS, GRADIENTS, WEIGHTS)

ACTIVATION_WORDS = frozenset({"activations", "activation", "acts", "act", "outputs", "output", "out", "features"})
GRADIENT_WORDS = frozenset({"gradients", "gradient", "grads", "grad"})
WEIGHT_WORDS = frozenset({"weights", "params", "parameters", "histogram"})
PARAMETER_WORDS = frozenset({"weight", "kernel", "bias", "gamma", "beta", "alpha", "recurrent_kernel", "embeddings"})
LEGACY_GRADIENT_SUFFIX = "_grad"  # TF1 write_grads: dense_1/kernel_0_grad
_SPLIT = re.compile(r"[/.]")
_PARAMETER = re.compile(r"^(weight|kernel|bias|gamma|beta|alpha|recurrent_kernel|embeddings)(_\d+)?$")


def tag_role(tag: str) -> tuple[str, str, str] | None:
    """``(layer, role, parameter)`` of another writer's histogram tag; None when it cannot be told.

    >>> tag_role("gradients/0.weight"), tag_role("relu_1/output"), tag_role("dense_1/kernel_0_grad")
    (('0', 'gradients', 'weight'), ('relu_1', 'activations', ''), ('dense_1', 'gradients', 'kernel_0'))
    >>> tag_role("something") is None
    True
    """
    words = [word for word in _SPLIT.split(tag) if word]
    role = ""
    parameter = ""
    rest: list[str] = []
    for word in words:
        lower = word.lower()
        if lower in GRADIENT_WORDS:
            role = GRADIENTS
        elif lower.endswith(LEGACY_GRADIENT_SUFFIX) and _PARAMETER.match(lower[: -len(LEGACY_GRADIENT_SUFFIX)]):
            role, parameter = GRADIENTS, lower[: -len(LEGACY_GRADIENT_SUFFIX)]
        elif lower in ACTIVATION_WORDS:
            role = role or ACTIVATIONS
        elif lower in WEIGHT_WORDS:
            role = role or WEIGHTS
        elif _PARAMETER.match(lower):
            parameter = lower
        else:
            rest.append(word)
    if parameter and not role:
        role = WEIGHTS  # fc1.weight, dense/kernel: a parameter named with nothing else is its value
    if not role or not rest:
        return None
    if role == ACTIVATIONS and parameter:
        return None  # "output.weight": a parameter of a layer called output, not an activation
    return "/".join(rest), role, parameter

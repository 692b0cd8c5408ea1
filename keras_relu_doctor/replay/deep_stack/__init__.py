"""The deep-stack replay: vanishing and exploding gradients in stacked conv blocks (the LeNet experiments).

Modules as in the dying-ReLU replay: :mod:`.grid` (runs, presets), :mod:`.data`
(the synthetic image task), :mod:`.model` (the Keras model), :mod:`.train` (one
run), :mod:`.results`, :mod:`.claims` (the article's findings, judged) and
:mod:`.summary` (the tables). Importing it does not import TensorFlow.
"""

"""The seeded replay of the synthetic (-1, 0) experiment of Jithin Jayan, "Is ReLU Dead?" (2019).

Stages, left to right, each a module with one job:

- :mod:`~keras_relu_doctor.replay.grid`: the runs (``RunSpec``), presets, ``--only``;
- :mod:`~keras_relu_doctor.replay.data`: inputs uniform in (-1, 0), the target, the split;
- :mod:`~keras_relu_doctor.replay.model`: the Keras model of a run, dead units measured on it;
- :mod:`~keras_relu_doctor.replay.train`: one run, with ``ReluDoctor`` (Keras only here);
- :mod:`~keras_relu_doctor.replay.backends`: the Keras backend, one thread per worker;
- :mod:`~keras_relu_doctor.replay.runner`: the logdir checks and the worker pool;
- :mod:`~keras_relu_doctor.replay.claims`: the article's claims judged on the results (pure);
- :mod:`~keras_relu_doctor.replay.summary`: the report's verdicts, the tables, ``summary.md/json``;
- :mod:`~keras_relu_doctor.replay.experiment`: ``run_replay``, all of the above in order.

:mod:`~keras_relu_doctor.replay.experiments` names the experiments ``run_replay``
can run: this one (``dying``) and :mod:`~keras_relu_doctor.replay.deep_stack`
(``deep-stack``: vanishing and exploding gradients in stacked conv blocks), whose
modules have the same jobs.

Importing this package imports neither Keras nor any of its backends.
"""

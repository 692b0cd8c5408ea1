"""The ReLU Doctor tab inside TensorBoard (``tensorboard --logdir LOGDIR``, then the tab).

``plugin.ReluDoctorPlugin`` is registered through the ``tensorboard_plugins``
entry point; ``data.DashboardData`` reads and diagnoses the runs for it.
Importing this package does not import TensorBoard's server: ``plugin`` does.
"""

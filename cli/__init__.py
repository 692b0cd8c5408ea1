"""The ``relu-doctor`` command line, installed as ``keras_relu_doctor.cli``.

Each command parses options, makes one call into :mod:`keras_relu_doctor`, and
maps :class:`keras_relu_doctor.errors.ReluDoctorError` to exit code 2.
"""

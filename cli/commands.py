"""The list of ``relu-doctor`` commands, one module each."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []

from keras_relu_doctor.cli.replay import replay  # noqa: E402
COMMANDS.append(replay)

from keras_relu_doctor.cli.report import report  # noqa: E402
COMMANDS.append(report)

from keras_relu_doctor.cli.compare import compare  # noqa: E402
COMMANDS.append(compare)

"""Entry point of ``relu-doctor``: a Click group; each command lives in its own module.

Imports stay light so ``relu-doctor --help`` answers at once: commands import
the library (and, for ``replay``, TensorFlow) only when they run.
"""

from __future__ import annotations

import click

from keras_relu_doctor import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="relu-doctor")
def main() -> None:
    """Find dying ReLU units, vanishing/exploding gradients and saturation in Keras runs."""


def _register() -> None:
    # Each command module adds itself here; a missing module is a packaging bug.
    from keras_relu_doctor.cli import commands

    for command in commands.COMMANDS:
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()

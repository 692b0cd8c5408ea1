"""The list of ``relu-doctor`` commands, one module each."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []

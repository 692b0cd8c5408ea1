"""The report as JSON, following ``render.schema.REPORT_JSON_SCHEMA``."""

from __future__ import annotations

import json
from typing import TextIO

from keras_relu_doctor.render.common import PrintableStream, printable
from keras_relu_doctor.report import Report, report_to_dict


def render_json(report: Report, *, indent: int | None = 2) -> str:
    """``report_to_dict(report)`` as JSON text.

    >>> from keras_relu_doctor.report import Report
    >>> json.loads(render_json(Report(logdir="runs", runs=())))["schema"]
    'keras_relu_doctor.report/1'
    """
    return printable(json.dumps(report_to_dict(report), indent=indent, allow_nan=False, ensure_ascii=False)) + "\n"


def write_json(report: Report, stream: TextIO, *, indent: int | None = 2) -> None:
    """Write the JSON document to ``stream`` piece by piece (no whole string in memory).

    >>> import io
    >>> from keras_relu_doctor.report import Report
    >>> buffer = io.StringIO(); write_json(Report(logdir="runs", runs=()), buffer)
    >>> json.loads(buffer.getvalue())["runs"]
    []
    """
    # Names Python could not decode (lone surrogates) are written as U+FFFD: valid UTF-8 JSON.
    json.dump(report_to_dict(report), PrintableStream(stream), indent=indent, allow_nan=False, ensure_ascii=False)
    stream.write("\n")

"""The report as JSON, following ``render.schema.REPORT_JSON_SCHEMA``."""

from __future__ import annotations

import json

from keras_relu_doctor.report import Report, report_to_dict


def render_json(report: Report, *, indent: int | None = 2) -> str:
    """``report_to_dict(report)`` as JSON text.

    >>> from keras_relu_doctor.report import Report
    >>> json.loads(render_json(Report(logdir="runs", runs=())))["schema"]
    'keras_relu_doctor.report/1'
    """
    return json.dumps(report_to_dict(report), indent=indent, allow_nan=False) + "\n"

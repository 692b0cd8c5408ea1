"""The JSON schema of ``relu-doctor report --format json`` (version 1).

A document is ``report_to_dict(report)``: ``schema`` names the version; a
change that removes or renames a field bumps it. Validate with ``jsonschema``:

>>> REPORT_JSON_SCHEMA["properties"]["schema"]["const"]
'keras_relu_doctor.report/1'
"""

from __future__ import annotations

from keras_relu_doctor.diagnose.findings import KINDS, SEVERITIES, VERDICTS
from keras_relu_doctor.report import GRADIENT_STATUSES, REPORT_SCHEMA

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_INDICES = {"type": "array", "items": {"type": "integer", "minimum": 0}}

FINDING_SCHEMA = {
    "type": "object",
    "required": ["kind", "layer", "severity", "onset_step", "units", "evidence", "fixes", "summary"],
    "properties": {
        "kind": {"enum": list(KINDS), "description": "what was found"},
        "layer": {"type": "string", "description": "the layer; for gradients, the one nearest the input; '' for the loss"},
        "severity": {"enum": list(SEVERITIES), "description": "info findings do not make a run unhealthy"},
        "onset_step": {**_INT_OR_NULL, "description": "first step at which the rule held"},
        "units": {**_INDICES, "description": "dead unit indices (dying_relu)"},
        "evidence": {"type": "object", "description": "the numbers behind the finding"},
        "fixes": {"type": "array", "items": {"type": "string"}, "description": "ranked, best first"},
        "summary": {"type": "string"},
    },
}

LAYER_SCHEMA = {
    "type": "object",
    "required": [
        "name", "units", "dead_units", "near_dead_units", "dead_fraction", "first_dead_step",
        "last_grad_norm", "grad_status", "steps", "dead_fraction_by_step", "grad_norm_by_step",
    ],
    "properties": {
        "name": {"type": "string", "description": "layer path in the model"},
        "activation": {"type": "string"},
        "units": {**_INT_OR_NULL, "description": "unit count; null without per-unit records"},
        "per_unit": {"type": "boolean", "description": "false: dead share estimated from a histogram"},
        "dead_units": {**_INDICES, "description": "units dead at the last step"},
        "near_dead_units": {**_INDICES, "description": "units with 0 < max|output| <= tolerance"},
        "revived_units": _INDICES,
        "dead_fraction": {**_NUMBER_OR_NULL, "description": "dead share at the last step"},
        "near_dead_fraction": _NUMBER_OR_NULL,
        "initial_dead_fraction": {**_NUMBER_OR_NULL, "description": "dead share at the first step"},
        "first_dead_step": {**_INT_OR_NULL, "description": "first step with a dead unit"},
        "last_grad_norm": {**_NUMBER_OR_NULL, "description": "gradient norm at the last step"},
        "grad_status": {"enum": list(GRADIENT_STATUSES)},
        "steps": {"type": "array", "items": {"type": "integer"}},
        "dead_fraction_by_step": {"type": "array", "items": _NUMBER_OR_NULL},
        "grad_norm_by_step": {"type": "array", "items": _NUMBER_OR_NULL},
        "last_output_grad_norm": {**_NUMBER_OR_NULL, "description": "norm of d loss / d layer output, last step"},
        "output_grad_norm_by_step": {"type": "array", "items": _NUMBER_OR_NULL},
        "liveness": {
            "type": ["object", "null"],
            "required": ["steps", "rows", "dead", "near_dead", "activity"],
            "properties": {
                "steps": {"type": "array", "items": {"type": "integer"}},
                "rows": {"type": "array", "items": _INDICES, "description": "unit indices per row, dead first"},
                "dead": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "near_dead": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "activity": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            },
            "description": "units x steps heatmap: the share of each row's units dead, near-dead, and their activity",
        },
    },
}  # fmt: skip

RUN_SCHEMA = {
    "type": "object",
    "required": ["run", "verdict", "problems", "findings", "layers"],
    "properties": {
        "run": {"type": "string", "description": "path relative to the logdir ('.' for the logdir itself)"},
        "verdict": {"enum": list(VERDICTS)},
        "problems": {"type": "array", "items": {"enum": list(KINDS)}, "description": "empty when healthy"},
        "findings": {"type": "array", "items": FINDING_SCHEMA},
        "layers": {"type": "array", "items": LAYER_SCHEMA},
        "gradient_status": {"enum": list(GRADIENT_STATUSES)},
        "step_unit": {"enum": ["epoch", "batch", None]},
        "loss_tag": {"type": ["string", "null"]},
        "truncated": {"type": "boolean", "description": "an event file ends early"},
        "truncated_files": {"type": "array", "items": {"type": "string"}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "probe_mode": {"enum": ["training", "inference", None], "description": "which network the probe measured"},
        "not_measured": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["layer", "layer_class", "reason"],
                "properties": {"layer": {"type": "string"}, "layer_class": {"type": "string"}, "reason": {"type": "string"}},
            },
            "description": "layers the callback could not measure, with the reason",
        },
        "skipped_layers": {"type": "integer", "description": "layers that only reshape, route, merge or drop values"},
        "gradients_note": {"type": "string", "description": "why no gradient was logged; empty when they were"},
        "source": {"type": "string", "description": "which tool wrote the logs; empty when nothing was read"},
        "lacks": {"type": "array", "items": {"type": "string"}, "description": "what the logs do not hold"},
        "unread_tags": {"type": "array", "items": {"type": "string"}, "description": "histogram tags not understood"},
        "fixes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text", "layers", "kinds"],
                "properties": {
                    "text": {"type": "string", "description": "what to change, and the source of the advice"},
                    "layers": {"type": "array", "items": {"type": "string"}},
                    "kinds": {"type": "array", "items": {"enum": list(KINDS)}},
                },
            },
            "description": "every finding's fixes once, best first",
        },
    },
}

REPORT_JSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "relu-doctor report",
    "type": "object",
    "required": ["schema", "logdir", "runs"],
    "properties": {
        "schema": {"const": REPORT_SCHEMA},
        "logdir": {"type": "string"},
        "runs": {"type": "array", "items": RUN_SCHEMA},
        "thresholds": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}

"""Renderers: JSON schema, offline HTML, 80-column text, Markdown, TensorBoard text."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2

from keras_relu_doctor import tags
from keras_relu_doctor.events.framing import iter_records
from keras_relu_doctor.events.writer import EventWriter
from keras_relu_doctor.render import render_html, render_json, render_markdown, render_text, write_tensorboard_text
from keras_relu_doctor.render.schema import REPORT_JSON_SCHEMA
from keras_relu_doctor.report import build_report

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Two runs: a dying one with a NaN gradient at one step, and a Keras-style validation run."""
    logdir = tmp_path_factory.mktemp("render")
    with EventWriter(logdir / "model_with_a_long_name" / "train") as writer:
        for step in range(4):
            max_abs = np.array([0.0, 0.0, 0.0] + [1.0] * 13 if step else [1.0] * 16, dtype=np.float32)
            writer.units("encoder/dense_with_long_name/units", np.stack([max_abs > 0, max_abs]), step, METADATA)
            writer.scalar("encoder/dense_with_long_name/grad_norm", [0.5, 0.4, float("nan"), 0.3][step], step)
            writer.units("head/units", np.ones((2, 2)), step, METADATA)
            writer.scalar("head/grad_norm", 0.3, step)
            writer.scalar(tags.KERAS_EPOCH_LOSS, 1.0 / (step + 1), step)
    with EventWriter(logdir / "model_with_a_long_name" / "validation") as writer:
        writer.scalar(tags.KERAS_EPOCH_LOSS, 1.0, step=0)
    return build_report(logdir, dead_threshold=0.1)


def test_json_validates_against_the_documented_schema(report):
    jsonschema = pytest.importorskip("jsonschema")
    document = json.loads(render_json(report))
    jsonschema.validate(document, REPORT_JSON_SCHEMA)
    train = document["runs"][0]
    assert document["schema"] == "keras_relu_doctor.report/1"
    assert train["run"] == "model_with_a_long_name/train"
    assert train["verdict"] == "exploding_gradients"
    assert set(train["problems"]) == {"exploding_gradients", "dying_relu"}
    layer = train["layers"][0]
    assert layer["dead_units"] == [0, 1, 2] and layer["first_dead_step"] == 1
    assert layer["grad_norm_by_step"] == [0.5, pytest.approx(0.4), None, pytest.approx(0.3)]
    assert document["runs"][1]["verdict"] == "no_data"


def test_html_is_self_contained(report):
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and page.count("<figure>") == 5  # a heatmap and two plots, two plots
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|src=", page, re.IGNORECASE)
    # The only URL is the SVG namespace, which a browser never fetches.
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}


def test_text_fits_80_columns_and_colours_only_when_asked(report):
    plain = render_text(report)
    assert max(len(line) for line in plain.splitlines()) <= 80
    assert "\x1b[" not in plain
    assert "encoder/dense_with_long_name" in plain and "3 (19%)" in plain
    assert "\x1b[" in render_text(report, color=True)


def test_markdown_has_a_table_and_ranked_fixes(report):
    markdown = render_markdown(report)
    assert "| layer | units | dead | near-dead | first dead | gradient norm |" in markdown
    assert "- **dying_relu** `encoder/dense_with_long_name` from step 1 (warning)" in markdown
    # Each fix once per run, with the layers and findings it answers.
    assert "Fixes, best first:" in markdown
    fixes = [line for line in markdown.splitlines() if re.match(r"\d+\. ", line)]
    assert len(fixes) == len(set(fixes)) > 0
    assert any(line.endswith("(encoder/dense_with_long_name: exploding_gradients)") for line in fixes)


def test_tensorboard_text_summary_is_written_into_each_run(report, tmp_path):
    written = write_tensorboard_text(report)
    assert len(written) == 2
    with open(written[0], "rb") as stream:
        records, _ = iter_records(stream, "report")
        events = [event_pb2.Event.FromString(record.payload) for record in records]
    value = events[-1].summary.value[0]
    assert value.tag == tags.REPORT_TEXT and value.metadata.plugin_data.plugin_name == tags.TEXT_PLUGIN
    assert b"dying_relu" in value.tensor.string_val[0]
    assert events[-1].step == 3
    # Reading the logdir again ignores the text summary.
    assert build_report(report.logdir, dead_threshold=0.1).runs == report.runs
    # Written again, the report replaces the one before instead of piling up beside it.
    again = write_tensorboard_text(report)
    for first, second in zip(written, again):
        folder = os.path.dirname(second)
        assert not os.path.exists(first) and [name for name in os.listdir(folder) if name.endswith(".relu-doctor")] == [
            os.path.basename(second)
        ]

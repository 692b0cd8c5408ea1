"""Structure-aware fuzz: well-framed event files whose protobuf fields and tensors are mutated.

Every record keeps valid framing (both CRCs recomputed), so the mutations
reach the protobuf and tensor parsing, the series building, the diagnosis and
every renderer. Whatever the bytes, the report must finish, using what it can
and saying what it left out; nothing but our own errors may be raised.

``RELU_DOCTOR_FUZZ_EXAMPLES`` sets the number of cases (10,000 by default;
``make fuzz`` runs 100,000).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2

from keras_relu_doctor import tags
from keras_relu_doctor.errors import ReluDoctorError
from keras_relu_doctor.events import read_logdir
from keras_relu_doctor.events.framing import frame
from keras_relu_doctor.events.writer import EventWriter, summary_metadata
from keras_relu_doctor.render import RENDERERS
from keras_relu_doctor.report import build_report

EXAMPLES = int(os.environ.get("RELU_DOCTOR_FUZZ_EXAMPLES", "10000"))
METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", layer_class="Dense")


def _events() -> list[event_pb2.Event]:
    """A small run with every kind of value the reader understands, as parsed events."""
    folder = tempfile.mkdtemp()
    rng = np.random.default_rng(3)
    facts = {"schema": 2, "model": {"name": "m"}, "layers": [{"path": "dense", "class": "Dense", "measured": True}]}
    with EventWriter(folder) as writer:
        for step in range(3):
            writer.histogram("dense/activations", np.maximum(rng.normal(size=64), 0), step=step)
            units = rng.uniform(size=(3, 4)).astype(np.float32)
            writer.units("dense/units", units, step=step, metadata=METADATA)
            writer.scalar("dense/grad_norm", 0.1 * step, step=step)
            writer.scalar(tags.KERAS_EPOCH_LOSS, 1.0 / (step + 1), step=step)
        writer.summaries(0, [(tags.MODEL_FACTS, summary_metadata(tags.PLUGIN_NAME, tags.MODEL_FACTS_CONTENT),
                              np.array(tags.encode_facts(facts), dtype=object))])  # fmt: skip
        legacy = summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag="relu_1/output", simple_value=0.5),
                summary_pb2.Summary.Value(
                    tag="activations/relu_1",
                    histo=summary_pb2.HistogramProto(min=0, max=2, num=4, bucket_limit=[0, 1, 2], bucket=[2, 1, 1]),
                ),
            ]
        )
        writer.write_event(event_pb2.Event(step=1, summary=legacy))
    data = open(writer.path, "rb").read()
    shutil.rmtree(folder)
    events, position = [], 0
    while position < len(data):
        length = int.from_bytes(data[position : position + 8], "little")
        events.append(event_pb2.Event.FromString(data[position + 12 : position + 12 + length]))
        position += 16 + length
    return events


EVENTS = _events()
JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
ODD_TEXT = st.text(max_size=12) | st.sampled_from(["", "/", "a//b", "[/bold]", "dense/units/units", "x" * 300])


@st.composite
def _mutated_tensor(draw, tensor: tensor_pb2.TensorProto) -> None:
    field = draw(st.sampled_from(["dtype", "shape", "content", "values", "strings", "clear"]))
    if field == "dtype":
        tensor.dtype = draw(st.integers(0, 30))
    elif field == "shape":
        del tensor.tensor_shape.dim[:]
        for size in draw(st.lists(st.integers(-2, 9), max_size=4)):
            tensor.tensor_shape.dim.add(size=size)
    elif field == "content":
        content = tensor.tensor_content
        cut = draw(st.integers(0, len(content)))
        tensor.tensor_content = draw(st.sampled_from([content[:cut], content + draw(st.binary(max_size=16)),
                                                      draw(st.binary(max_size=64))]))  # fmt: skip
    elif field == "values":
        tensor.float_val.extend(draw(st.lists(st.floats(width=32), max_size=4)))
        tensor.double_val.extend(draw(st.lists(st.floats(), max_size=4)))
    elif field == "strings":
        tensor.string_val.extend(draw(st.lists(st.binary(max_size=24), max_size=3)))
    else:
        tensor.Clear()


@st.composite
def _mutated_value(draw, value: summary_pb2.Summary.Value) -> None:
    part = draw(st.sampled_from(["tag", "plugin", "content", "tensor", "simple", "histo", "kind"]))
    if part == "tag":
        value.tag = draw(ODD_TEXT)
    elif part == "plugin":
        value.metadata.plugin_data.plugin_name = draw(
            st.sampled_from([tags.PLUGIN_NAME, tags.SCALARS_PLUGIN, tags.HISTOGRAMS_PLUGIN, "text", ""])
        )
    elif part == "content":
        value.metadata.plugin_data.content = draw(
            st.sampled_from([json.dumps(draw(JSONS)).encode(), draw(st.binary(max_size=32)), b""])
        )
    elif part == "tensor":
        draw(_mutated_tensor(value.tensor))
    elif part == "simple":
        value.simple_value = draw(st.floats(width=32))
    elif part == "histo":
        histo = value.histo
        histo.min, histo.max, histo.num = (draw(st.floats()) for _ in range(3))
        del histo.bucket_limit[:], histo.bucket[:]
        histo.bucket_limit.extend(draw(st.lists(st.floats(), max_size=5)))
        histo.bucket.extend(draw(st.lists(st.floats(), max_size=5)))
    else:
        value.ClearField(draw(st.sampled_from(["tensor", "metadata", "simple_value", "histo"])))


@st.composite
def mutated_file(draw) -> bytes:
    events = [event_pb2.Event.FromString(event.SerializeToString()) for event in EVENTS]
    for _ in range(draw(st.integers(1, 4))):
        event = events[draw(st.integers(0, len(events) - 1))]
        if draw(st.integers(0, 9)) == 0:
            event.step = draw(st.sampled_from([-1, -(2**63), 2**63 - 1, 0]))
        elif event.summary.value:
            draw(_mutated_value(event.summary.value[draw(st.integers(0, len(event.summary.value) - 1))]))
    if draw(st.booleans()):
        events.append(events[draw(st.integers(0, len(events) - 1))])  # a repeated record
    return b"".join(frame(event.SerializeToString()) for event in events)


@pytest.fixture(scope="module")
def scratch():
    folder = tempfile.mkdtemp()
    os.mkdir(os.path.join(folder, "train"))
    yield folder
    shutil.rmtree(folder)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=mutated_file(), output_format=st.sampled_from(sorted(RENDERERS)))
def test_well_framed_mutated_files_always_give_a_report(scratch, data, output_format):
    with open(os.path.join(scratch, "train", "events.out.tfevents.1.fuzz"), "wb") as stream:
        stream.write(data)
    try:
        report = build_report(read_logdir(scratch))
    except ReluDoctorError:
        return
    text = RENDERERS[output_format](report)
    text.encode("utf-8")  # writable as UTF-8 whatever the names
    if output_format == "json":
        json.loads(text)

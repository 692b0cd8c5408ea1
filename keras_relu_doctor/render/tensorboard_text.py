"""Write the report into the logdir as a text summary, for TensorBoard's Text tab."""

from __future__ import annotations

import os

from keras_relu_doctor.events.logdir import EVENT_FILE_MARKER
from keras_relu_doctor.events.storage import storage_for
from keras_relu_doctor.events.writer import EventWriter
from keras_relu_doctor.render.common import printable
from keras_relu_doctor.render.markdown_report import render_run_markdown
from keras_relu_doctor.report import Report
from keras_relu_doctor.tags import REPORT_TEXT

REPORT_FILE_SUFFIX = ".relu-doctor"


def write_tensorboard_text(report: Report, logdir: str | os.PathLike | None = None) -> list[str]:
    """Add one event file per run holding its report as Markdown (tag ``relu_doctor/report``).

    It goes into the run's own folder, at the run's last step, so TensorBoard
    shows it beside that run's histograms; the report an earlier call wrote
    there is removed once the new one is whole. Returns the files written.
    """
    root = os.fspath(logdir if logdir is not None else report.logdir)
    written = []
    for run in report.runs:
        steps = [step for layer in run.layers for step in layer.steps]
        folder = os.path.join(root, run.run)
        with EventWriter(folder, suffix=REPORT_FILE_SUFFIX) as writer:
            writer.text(REPORT_TEXT, printable(render_run_markdown(run)), step=max(steps, default=0))
        written.append(writer.path)
        storage, where = storage_for(folder)
        new = os.path.basename(writer.path)
        for name in storage.listdir(where):
            if EVENT_FILE_MARKER in name and name.endswith(REPORT_FILE_SUFFIX) and name != new:
                storage.remove(storage.join(where, name))
    return written

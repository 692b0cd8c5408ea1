"""Rendering reports: text, JSON, Markdown, HTML and a TensorBoard text summary.

>>> from keras_relu_doctor.render import RENDERERS
>>> sorted(RENDERERS)
['html', 'json', 'markdown', 'text']
"""

from keras_relu_doctor.render.html_report import render_html
from keras_relu_doctor.render.json_report import render_json, write_json
from keras_relu_doctor.render.markdown_report import render_markdown
from keras_relu_doctor.render.tensorboard_text import write_tensorboard_text
from keras_relu_doctor.render.text_report import render_text

RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown, "html": render_html}

__all__ = ["RENDERERS", "render_html", "render_json", "render_markdown", "render_text", "write_json", "write_tensorboard_text"]

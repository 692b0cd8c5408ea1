"""The ReLU Doctor tab in TensorBoard: a dynamic plugin, registered through the
``tensorboard_plugins`` entry point, so ``tensorboard --logdir logs`` shows it.

Routes, under ``/data/plugin/relu_doctor``:

- ``/index.js``: the dashboard (an ES module TensorBoard loads in an iframe);
- ``/runs``: every run with its verdict, problems first;
- ``/run?run=NAME``: findings, fixes, notes, model facts and layers;
- ``/layer?run=NAME&layer=L``: a layer's dead-share and gradient-norm curves and its heatmap.

No TensorFlow import: the data come from ``keras_relu_doctor.dashboard.data``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from keras_relu_doctor.dashboard.data import DashboardData, NoLogdir, UnknownName, parse_logdir_spec
from keras_relu_doctor.tags import PLUGIN_NAME

STATIC = os.path.join(os.path.dirname(__file__), "static")
TAB_NAME = "ReLU Doctor"


class ReluDoctorPlugin(base_plugin.TBPlugin):
    """Which unit died when, and why, for every run of the logdir."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        flags = context.flags
        spec = context.logdir or (getattr(flags, "logdir_spec", "") if flags else "")
        self._data = DashboardData(parse_logdir_spec(spec) if spec else [])

    def is_active(self) -> bool:
        """Asked only when TensorBoard's data provider lists no record of ours: logs written before the
        records said their data class (the Rust data server drops those) still have runs to show."""
        try:
            return any(run["verdict"] != "no_data" for run in self._data.runs())
        except NoLogdir:
            return False

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name=TAB_NAME, disable_reload=False)

    def get_plugin_apps(self) -> dict[str, Callable]:
        return {
            "/index.js": self._index_js,
            "/runs": self._json(lambda request: self._data.runs()),
            "/run": self._json(lambda request: self._data.run(_argument(request, "run"))),
            "/layer": self._json(lambda request: self._data.layer(_argument(request, "run"), _argument(request, "layer"))),
        }

    @wrappers.Request.application
    def _index_js(self, request: wrappers.Request) -> wrappers.Response:
        with open(os.path.join(STATIC, "index.js"), encoding="utf-8") as source:
            return http_util.Respond(request, source.read(), "text/javascript")

    @staticmethod
    def _json(answer: Callable[[wrappers.Request], Any]) -> Callable:
        """A route answering JSON; an unknown or missing name is a 400/404 with a one-line error."""

        @wrappers.Request.application
        def route(request: wrappers.Request) -> wrappers.Response:
            try:
                body, code = answer(request), 200
            except MissingArgument as error:
                body, code = {"error": str(error)}, 400
            except (UnknownName, NoLogdir) as error:
                body, code = {"error": str(error.args[0])}, 404
            return http_util.Respond(request, json.dumps(body), "application/json", code=code)

        return route


class MissingArgument(ValueError):
    """A route was called without a query argument it needs."""


def _argument(request: wrappers.Request, name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise MissingArgument(f"missing query argument {name!r}")
    return value

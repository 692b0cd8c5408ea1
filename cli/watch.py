"""``relu-doctor report LOGDIR --watch``: follow a logdir while training writes it.

Every ``--interval`` seconds the logdir is polled (only new bytes are read,
see :mod:`keras_relu_doctor.events.live`), the runs that changed are diagnosed
again, and one line is printed per run that appears and per finding that
appears, changes severity or clears. On a terminal a status table of every
run is redrawn below those lines. Ctrl-C ends it cleanly; with ``--fail-on``
it also ends, exit code 1, at the end of the poll where a problem of those
kinds appears. A store that cannot be reached at the start is an error (exit
code 2); later, a failed poll is said once and tried again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from keras_relu_doctor.diagnose.findings import Finding

EXIT_FOUND = 1
SHOWN_FINDINGS = 2  # findings named per run in the status table
NAMED_RUNS = 5  # runs with problems named on the last line


@dataclass(frozen=True)
class Change:
    """A finding that appeared (``+``), changed (``~``) or cleared (``-``) in one run."""

    mark: str
    run: str
    finding: Finding
    step: int | None

    def line(self) -> str:
        where = f"step {self.step}" if self.step is not None else "no step yet"
        text = self.finding.summary or self.finding.kind
        layers = ", ".join(self.finding.layers)
        about = f" {layers}:" if layers and layers not in text else ""
        state = "cleared" if self.mark == "-" else self.finding.severity
        return f"{time.strftime('%H:%M:%S')} {self.run} ({where}) {self.mark} {self.finding.kind} [{state}]{about} {text}"


def _key(finding: Finding) -> tuple[str, str]:
    return finding.kind, finding.layer


def changes(run: str, before: tuple[Finding, ...], after: tuple[Finding, ...], step: int | None) -> list[Change]:
    """What differs between two diagnoses of one run.

    A finding changes when its severity does; its numbers (a dead share, the
    best loss) drift at every step without a line each time.

    >>> dead = Finding("dying_relu", "dense", "warning", 3, summary="60% of units dead")
    >>> [change.mark for change in changes("train", (), (dead,), 3)]
    ['+']
    >>> [change.mark for change in changes("train", (dead,), (), 4)]
    ['-']
    """
    old = {_key(finding): finding for finding in before}
    new = {_key(finding): finding for finding in after}
    found = []
    for key, finding in new.items():
        previous = old.get(key)
        if previous is None:
            found.append(Change("+", run, finding, step))
        elif previous.severity != finding.severity:
            found.append(Change("~", run, finding, step))
    found.extend(Change("-", run, finding, step) for key, finding in old.items() if key not in new)
    return found


def _last_step(report: Any) -> int | None:
    steps = [step for layer in report.layers for step in layer.steps]
    return max(steps, default=None)


def watch(
    logdir: str,
    *,
    run_glob: str | None,
    thresholds: Any,
    interval: float,
    fail_kinds: frozenset[str],
    stream: TextIO,
    live_view: bool,
    width: int,
    sleep: Callable[[float], None] = time.sleep,
    polls: int | None = None,
) -> int:
    """Follow ``logdir`` until Ctrl-C (exit code 0) or a ``fail_kinds`` finding (1); see the module docstring.

    ``live_view`` redraws a status table (a terminal); otherwise only the
    change lines are printed, each flushed at once. ``polls`` bounds the loop
    (None: until stopped).
    """
    from keras_relu_doctor.errors import BadOption, one_line
    from keras_relu_doctor.events.live import LiveLogdir
    from keras_relu_doctor.report import report_run

    live = LiveLogdir(logdir, run_glob)  # an unknown scheme or a missing package is said here, before any line
    try:
        live.check()
    except Exception as error:  # noqa: BLE001 -- the store's own words: no bucket, no credentials, no network
        raise BadOption(f"cannot watch {logdir!r}: {one_line(error)}") from None
    reports: dict[str, Any] = {}
    announced: set[str] = set()  # runs said once they have layer data
    _stop_on_sigterm()
    out = _Output(stream, live_view, width)
    out.say(f"watching {logdir} every {interval:g} s (Ctrl-C to stop)")
    done, failing = 0, ""
    try:
        with out:
            while polls is None or done < polls:
                try:
                    changed = live.poll()
                except Exception as error:  # noqa: BLE001 -- a lost connection: say it once, try again
                    changed, reason = [], one_line(error)
                    if reason != failing:
                        out.say(f"{time.strftime('%H:%M:%S')} cannot read {logdir} ({reason}); trying again every {interval:g} s")
                    failing = reason
                else:
                    failing = ""
                found = []
                for path in changed:
                    report = report_run(live.run(path), thresholds, heatmaps=False)
                    if path not in announced and report.verdict != "no_data":
                        announced.add(path)
                        out.say(f"{time.strftime('%H:%M:%S')} {path} (step {_last_step(report)}) new run: {report.verdict}")
                    before = reports[path].findings if path in reports else ()
                    reports[path] = report
                    for change in changes(path, before, report.findings, _last_step(report)):
                        out.say(change.line())
                        if change.mark != "-" and change.finding.problem and change.finding.kind in fail_kinds:
                            found.append(change.finding.kind)
                out.status(logdir, reports)
                if found:
                    out.say(f"stopped: found {', '.join(dict.fromkeys(found))} (--fail-on)")
                    return EXIT_FOUND
                done += 1
                if polls is None or done < polls:
                    sleep(interval)
    except KeyboardInterrupt:
        pass
    problems = sorted(path for path, report in reports.items() if report.problems)
    named = f": {', '.join(problems[:NAMED_RUNS])}{' ...' if len(problems) > NAMED_RUNS else ''}" if problems else ""
    out.say(f"stopped watching {logdir}: {len(reports)} run(s), {len(problems)} with problems{named}")
    return 0


def _stop_on_sigterm() -> None:
    """``kill`` (SIGTERM) ends the watch as Ctrl-C does, with its last line."""
    import signal
    import threading

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


class _Output:
    """Change lines, and on a terminal a status table redrawn under them (rich Live)."""

    def __init__(self, stream: TextIO, live_view: bool, width: int) -> None:
        from rich.console import Console

        self.stream = stream
        self.console = Console(file=stream, width=width, highlight=False, emoji=False, force_jupyter=False)
        self.live: Any = None
        if live_view:
            from rich.live import Live

            self.live = Live(console=self.console, auto_refresh=False)  # the last table stays on screen

    def __enter__(self) -> _Output:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc_info)

    def say(self, line: str) -> None:
        if self.live is not None:
            from rich.text import Text

            self.console.print(Text(line))
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def status(self, logdir: str, reports: dict[str, Any]) -> None:
        if self.live is None:
            return
        from rich.table import Table
        from rich.text import Text

        if not reports:
            self.live.update(Text(f"waiting for event files under {logdir} ..."), refresh=True)
            return
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("run", "verdict", "step", "findings"):
            table.add_column(column, overflow="fold")
        for path in sorted(reports):
            report = reports[path]
            problems = [finding for finding in report.findings if finding.problem]
            named = [f"{finding.kind} ({finding.layer or 'loss'})" for finding in problems[:SHOWN_FINDINGS]]
            more = len(problems) - SHOWN_FINDINGS
            step = _last_step(report)
            table.add_row(
                path, report.verdict, "-" if step is None else str(step),
                ", ".join(named) + (f" and {more} more" if more > 0 else "") or "-",
            )
        self.live.update(table, refresh=True)

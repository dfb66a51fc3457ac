"""`fmb run`: prepare, deploy, collect, build, report and cleanup, as the config's run_steps say.

Whatever happens in between (a failed step, Ctrl-C, SIGTERM), what this run deployed is
taken down again: local servers always, since they are this process's children; other
endpoints when the cleanup step is on or the run did not finish. An endpoint left
running is named loudly, with the command that removes it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markup import escape

from fmb import deployers
from fmb.config import LoadedConfig
from fmb.config.steps import enabled_steps
from fmb.endpoints import Endpoint
from fmb.errors import FmbError
from fmb.paths import ResultsLayout


@dataclass
class RunOutcome:
    steps: list[str]
    run_id: str | None = None  # the last collected run (the one the report shows)
    run_ids: list[str] = field(default_factory=list)  # every run collected, in order (one run group)
    report: Path | None = None
    left_running: list[str] = field(default_factory=list)


@dataclass
class DeployedStage:
    """One experiment deployed right before its cells and removed after them (fmb.collector.collect.Stage)."""

    loaded: LoadedConfig
    layout: ResultsLayout
    console: Console
    experiment: str
    host_port: str | None
    run_id: str
    made: bool = False

    def up(self) -> Endpoint:
        from fmb.endpoints import resolve_endpoints

        self.console.rule(f"deploy {self.experiment}")
        made = deployers.deploy(
            self.loaded,
            self.layout.root,
            self.console,
            attached=True,
            only=(self.experiment,),
            host_port=self.host_port,
            run_id=self.run_id,
        )
        self.made = bool(made)  # one already running (from `fmb deploy`) is used, and left as it was
        return resolve_endpoints(self.loaded, self.layout, (self.experiment,))[self.experiment]

    def down(self, failed: bool) -> None:
        if not self.made:
            return
        try:
            deployers.cleanup(self.loaded, self.layout.root, self.console, only={self.experiment}, attached_too=False)
        except FmbError as exc:
            if not failed:
                raise
            self.console.print(f"[bold red]Cleanup failed:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        self.made = False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    console: Console,
    *,
    quiet: bool = False,
    config_arg: str = "CONFIG",
    repeat: int = 1,
    host_port: str | None = None,
) -> RunOutcome:
    """Run the config's steps; with ``repeat`` > 1 the collect step runs that many times into one run group."""
    from fmb.collector.collect import Stage, collect
    from fmb.collector.run_tables import new_run_id
    from fmb.endpoints import resolve_endpoints
    from fmb.prepare.payloads import prepare
    from fmb.reports.render import render_report
    from fmb.summary import print_collect_summary, print_left_running, print_prepare_summary
    from fmb.warehouse.build import build, warehouse_path

    steps, notes = enabled_steps(loaded.config.run_steps)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    console.print(f"[bold]fmb run {escape(loaded.name)}[/]: {' -> '.join(steps) or 'nothing to do'}", highlight=False)
    outcome = RunOutcome(steps)
    # Named before deploying, so that what is deployed for the run carries its id.
    run_id = new_run_id()
    previous: Callable | int | None = signal.signal(signal.SIGTERM, _raise_interrupt)
    finished = False
    started: set[str] = set()
    try:
        if "prepare" in steps:
            console.rule("prepare")
            print_prepare_summary(console, prepare(loaded, layout))
        staged = deployers.one_at_a_time(loaded) if "deploy" in steps and "collect" in steps else frozenset()
        if "deploy" in steps:
            console.rule("deploy")
            if staged:
                console.print(
                    f"{', '.join(sorted(staged))}: containers on this host, deployed one at a time right before "
                    "their cells and removed after them (as FMBench does)",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
            now = tuple(e.name for e in loaded.experiments if e.spec.deploy and e.name not in staged)
            if now:
                made = deployers.deploy(
                    loaded, layout.root, console, attached=True, only=now, host_port=host_port, run_id=run_id
                )
                started = {d.experiment for d in made}
        if "collect" in steps:
            console.rule("collect")
            endpoints = resolve_endpoints(loaded, layout, staged=staged)
            started |= staged  # whatever of them is still up when the run fails is taken down at the end
            stages: dict[str, Stage] = {
                name: DeployedStage(loaded, layout, console, name, host_port, run_id) for name in sorted(staged)
            }
            for index in range(1, repeat + 1):
                if repeat > 1:
                    console.print(
                        f"Run {index} of {repeat}" + (f" (run group {outcome.run_ids[0]})" if outcome.run_ids else ""),
                        highlight=False,
                        markup=False,
                    )
                result = collect(
                    loaded,
                    layout,
                    endpoints,
                    quiet=quiet,
                    console=console,
                    run_group=outcome.run_ids[0] if outcome.run_ids else None,
                    repeat_index=index,
                    run_id=run_id if index == 1 else None,
                    stages=stages,
                )
                print_collect_summary(console, result, layout)
                outcome.run_id = result.run_id
                outcome.run_ids.append(result.run_id)
                if result.status == "interrupted":
                    raise KeyboardInterrupt
        evaluation_error: FmbError | None = None
        if "evaluate" in steps:
            console.rule("evaluate")
            from fmb.evaluate.step import evaluate
            from fmb.summary import print_evaluation_summary

            try:
                print_evaluation_summary(console, evaluate(loaded, layout, console, run_id=outcome.run_id))
            except FmbError as exc:  # the measurements stand: build and report them, then say it failed
                evaluation_error = exc
                console.print(
                    f"[bold red]The accuracy step failed:[/] {escape(exc.message)}", highlight=False, soft_wrap=True
                )
        if "build" in steps:
            console.rule("build")
            built = build(layout.root, on_wait=lambda message: console.print(message, highlight=False, markup=False))
            console.print(f"dbt build: {built.summary()}", highlight=False)
        if "report" in steps:
            console.rule("report")
            outcome.report = render_report(
                warehouse_path(layout.root), None, outcome.run_id, layout.root, benchmark=loaded.name
            ).path
            console.print(f"Report: {outcome.report}", highlight=False, markup=False)
        if evaluation_error is not None:
            raise FmbError(
                f"the accuracy step failed ({evaluation_error.message}); the rest of the run was built and "
                "reported without accuracy figures.",
                hint=evaluation_error.hint,
            )
        finished = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            if finished and "cleanup" in steps:
                console.rule("cleanup")
                deployers.cleanup(loaded, layout.root, console)  # FMBench's cleanup step: every endpoint
            else:
                # Local servers of this run always stop with it; after a failure, what it deployed goes too.
                deployers.cleanup(loaded, layout.root, console, only=set() if finished else started)
        except FmbError as exc:  # never hide the error that ended the run
            console.print(f"[bold red]Cleanup failed:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        finally:
            left = deployers.still_running(loaded, layout.root)
            outcome.left_running = sorted(d.experiment for d in left)
            print_left_running(console, left, config_arg, layout.root)
    return outcome

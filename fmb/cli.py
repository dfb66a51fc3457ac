"""The `fmb` command line: parse options, call one function, print the outcome."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import click
from rich.console import Console
from rich.markup import escape

from fmb import __version__
from fmb.config.placeholders import parse_assignments
from fmb.errors import FmbError
from fmb.paths import ResultsLayout
from fmb.redact import RedactingStream, Redactor, assignment_secrets

if TYPE_CHECKING:
    from fmb.collector.recovery import Recovered
    from fmb.config import LoadedConfig

# Everything the commands print goes through these streams, which mask the secrets that
# -A and the loaded config make known (see fmb.redact).
_out, _err = RedactingStream(), RedactingStream(stderr=True)
console = Console(file=cast(IO[str], _out))
err_console = Console(file=cast(IO[str], _err), stderr=True)


def _mask_in_output(redactor: Redactor) -> None:
    _out.redact = _err.redact = redactor


def results_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--results DIR (default ./results), with a help text that says what the command uses it for."""
    return click.option(
        "--results",
        "results",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("results"),
        show_default=True,
        help=help_text,
    )


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """CONFIG, -A key=value and --results, shared by every command that reads a config."""
    func = results_option("Folder for payloads, raw tables, the warehouse and reports.")(func)
    func = click.option(
        "-A",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Fill the config's {KEY} placeholders, as FMBench's -A does (repeatable).",
    )(func)
    return click.argument("config", type=click.Path(dir_okay=False, path_type=Path))(func)


def _load(config: Path, assignments: tuple[str, ...], results: Path) -> LoadedConfig:
    from fmb.config import load_config

    values = parse_assignments(assignments)
    _mask_in_output(Redactor(*assignment_secrets(values, ())))  # until the config says more
    loaded = load_config(config, values, results)
    _mask_in_output(loaded.redactor())
    return loaded


def _say_recovered(recovered: list[Recovered]) -> None:
    """Name the runs whose dead collector `fmb collect` or `fmb build` found and finished."""
    for found in recovered:
        console.print(
            f"Run {found.run_id} was abandoned by a collector that ended without finishing it; recorded "
            f"as abandoned, {found.rows} request row(s) recovered from its journal.",
            highlight=False,
            markup=False,
        )


class FmbGroup(click.Group):
    """Turns user errors into one paragraph on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        _mask_in_output(Redactor())
        try:
            return super().invoke(ctx)
        except FmbError as exc:
            err_console.print(f"[bold red]Error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                err_console.print(exc.hint, highlight=False, soft_wrap=True, markup=False)
            ctx.exit(1)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            err_console.print(
                f"[bold red]Error:[/] {escape(str(exc.strerror or exc))}{escape(where)}",
                highlight=False,
                soft_wrap=True,
            )
            ctx.exit(1)


@click.group(cls=FmbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fmb")
def cli() -> None:
    """Benchmark LLM endpoints for price and performance; keep every request in a SQL warehouse.

    fmb reads FMBench config files unchanged. The usual flow is
    `fmb prepare CONFIG`, `fmb collect CONFIG`, then `dbt build` and `fmb report`.
    """


@cli.group("config")
def config_group() -> None:
    """Inspect and validate config files."""


@config_group.command("check")
@config_options
def config_check(config: Path, assignments: tuple[str, ...], results: Path) -> None:
    """Load CONFIG and print what fmb would run, or why it cannot.

    Shows each experiment's back end, instance type, payload files, concurrency levels
    and the number of requests per cell; warns about keys fmb ignores.
    """
    from fmb.summary import print_config_summary

    loaded = _load(config, assignments, results)
    print_config_summary(console, loaded, ResultsLayout(results))


@cli.command()
@config_options
def prepare(config: Path, assignments: tuple[str, ...], results: Path) -> None:
    """Turn CONFIG's datasets into payload files, one per filter.

    Reads LongBench-format or plain JSONL (or a built-in synthetic dataset), fills the
    prompt template, counts tokens, applies the language and token-length filters, and
    writes FMBench-format payload JSONL files plus the raw/prompts table.
    """
    from fmb.prepare.payloads import prepare as run_prepare
    from fmb.summary import print_prepare_summary

    loaded = _load(config, assignments, results)
    outcome = run_prepare(loaded, ResultsLayout(results))
    print_prepare_summary(console, outcome)


@cli.command()
@config_options
@click.option(
    "--experiment", "experiments", multiple=True, metavar="NAME", help="Run only this experiment (repeatable)."
)
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option(
    "--resume",
    "resume",
    metavar="RUN_ID",
    default=None,
    help="Send only the missing requests of this cut-short run (interrupted, failed or abandoned), "
    "into the same run; the config must be the one the run was started with.",
)
def collect(
    config: Path,
    assignments: tuple[str, ...],
    results: Path,
    experiments: tuple[str, ...],
    quiet: bool,
    resume: str | None,
) -> None:
    """Send CONFIG's requests and write one Parquet row per request.

    Every (experiment, payload file, concurrency) cell runs with continuous concurrency;
    failures, timeouts and throttling are rows with their status. Every finished request
    is on disk at once (a journal beside the Parquet parts), so a killed run loses none;
    the next `fmb collect` or `fmb build` records such a run as abandoned, and
    `--resume RUN_ID` sends what it did not.
    """
    from fmb.collector.collect import collect as run_collect
    from fmb.deployers import still_running
    from fmb.endpoints import resolve_endpoints
    from fmb.summary import print_collect_summary, print_left_running

    loaded = _load(config, assignments, results)
    endpoints = resolve_endpoints(loaded, ResultsLayout(results), experiments)
    outcome = run_collect(
        loaded, ResultsLayout(results), endpoints, quiet=quiet, only=experiments, console=console, resume=resume
    )
    _say_recovered(outcome.recovered)
    if outcome.resumed_requests is not None:
        console.print(
            f"Resuming run {outcome.run_id}: {outcome.resumed_requests} missing request(s).",
            highlight=False,
            markup=False,
        )
    print_collect_summary(console, outcome, ResultsLayout(results))
    print_left_running(console, still_running(loaded, results), str(config), results)
    if outcome.status == "interrupted":
        console.print(
            f"To send the requests this run did not: fmb collect {config} --results {results} "
            f"--resume {outcome.run_id}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        sys.exit(130)


def host_port_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--host-port, for inference containers on this host."""
    return click.option(
        "--host-port",
        "host_port",
        metavar="auto|config|PORT",
        default=None,
        callback=_check_host_port,
        help="Containers (ec2_deploy.py): publish the first copy on this host port; auto lets Docker pick free "
        "ports, config (the default) uses the port in ep_name, as FMBench does. Overrides ec2.host_port.",
    )(func)


def _check_host_port(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or value in ("auto", "config") or (value.isdigit() and 1 <= int(value) <= 65535):
        return value
    raise click.BadParameter("expected auto, config or a port number (1-65535)")


@cli.command()
@config_options
@click.option(
    "--experiment", "experiments", multiple=True, metavar="NAME", help="Deploy only this experiment (repeatable)."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would be created for every experiment (image, command, env with secrets masked, ports, "
    "devices, instance type) and create nothing.",
)
@host_port_option
def deploy(
    config: Path,
    assignments: tuple[str, ...],
    results: Path,
    experiments: tuple[str, ...],
    dry_run: bool,
    host_port: str | None,
) -> None:
    """Stand up every experiment of CONFIG with `deploy: yes` and record what was created.

    Local servers and containers keep running in the background after this command;
    `fmb collect` finds them through the record, and `fmb cleanup CONFIG` removes exactly
    them. Endpoints with `deploy: no` are never touched.
    """
    from fmb import deployers
    from fmb.summary import print_deploy_plans, print_left_running

    loaded = _load(config, assignments, results)
    if dry_run:
        if not print_deploy_plans(console, loaded, experiments, host_port):
            sys.exit(1)
        return
    made = deployers.deploy(loaded, results, console, attached=False, only=experiments, host_port=host_port)
    if not made:
        console.print("Nothing to deploy (no experiment with deploy: yes, or all already up).")
    print_left_running(console, deployers.still_running(loaded, results), str(config), results)


@cli.command()
@config_options
@click.option("--run-id", default=None, help="Run to evaluate (default: the benchmark's latest).")
def evaluate(config: Path, assignments: tuple[str, ...], results: Path, run_id: str | None) -> None:
    """Judge the accuracy of a run's responses: FMBench's panel of LLM judges and quantitative scores.

    Reads the settings FMBench keeps in model_eval_all_info.yml (the config's
    model_evaluations), scores every successful response against its ground truth (cosine
    similarity, Levenshtein and token-set ratios, exact match, token F1) and asks every judge
    of the panel for a verdict; every judge call is a row of raw/evaluations. `fmb build`
    turns them into votes, accuracy per cell, judge agreement and the cost of judging.
    """
    from fmb.evaluate.step import evaluate as run_evaluate
    from fmb.summary import print_evaluation_summary

    loaded = _load(config, assignments, results)
    outcome = run_evaluate(loaded, ResultsLayout(results), console, run_id=run_id)
    print_evaluation_summary(console, outcome)


@cli.command("cloudwatch")
@config_options
@click.option("--run-id", default=None, help="Run whose metrics to fetch (default: the benchmark's latest).")
def cloudwatch_command(config: Path, assignments: tuple[str, ...], results: Path, run_id: str | None) -> None:
    """Fetch a finished run's CloudWatch metrics again, into raw/endpoint_metrics.

    `fmb collect` fetches the CloudWatch metrics of its SageMaker endpoints and Bedrock models
    as soon as the run ends, but CloudWatch publishes datapoints a minute or more late, so
    that fetch misses the last minute or so. Run this a few minutes later: it fetches each
    experiment's window again (first request to last response of the run, widened to whole
    periods) and the new fetch supersedes the earlier one. One-minute datapoints are kept by
    CloudWatch for 15 days. Exits 1 when no experiment's metrics could be fetched.
    """
    from fmb.collector.cloudwatch import refetch

    loaded = _load(config, assignments, results)
    outcome = refetch(loaded, ResultsLayout(results), run_id)
    for line in outcome.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if outcome.failed:
        sys.exit(1)


@cli.command()
@config_options
def cleanup(config: Path, assignments: tuple[str, ...], results: Path) -> None:
    """Remove exactly what `fmb deploy` (or `fmb run`) created for CONFIG, as recorded; nothing else."""
    from fmb import deployers

    loaded = _load(config, assignments, results)
    removed = deployers.cleanup(loaded, results, console)
    if not removed:
        console.print("Nothing to clean up: fmb has no running deployment recorded for this config.")


@cli.command("run")
@config_options
@click.option("--quiet", is_flag=True, help="No progress display while collecting.")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Run the collect step N times into one run group; the report shows the spread of each cell.",
)
@host_port_option
def run_command(
    config: Path, assignments: tuple[str, ...], results: Path, quiet: bool, repeat: int, host_port: str | None
) -> None:
    """Run the whole benchmark: prepare, deploy, collect, dbt build, report, cleanup.

    Honours the config's run_steps (FMBench's old and new step names). What this run
    deployed is removed again even when a later step fails or the run is interrupted.
    With --repeat N the collect step runs N times against the same endpoints, into one
    run group, so that the report can tell a change from noise.
    """
    from fmb.run import run

    loaded = _load(config, assignments, results)
    try:
        outcome = run(
            loaded,
            ResultsLayout(results),
            console,
            quiet=quiet,
            config_arg=str(config),
            repeat=repeat,
            host_port=host_port,
        )
    except KeyboardInterrupt:
        err_console.print("Interrupted; what was measured is kept, and what this run deployed was removed.")
        sys.exit(130)
    if outcome.report:
        console.print(f"[bold green]Done.[/] Report: {escape(str(outcome.report))}", highlight=False)


@cli.command("build")
@results_option("Folder holding raw/ (written by fmb collect); the warehouse and marts go here too.")
@click.option("--select", "select", multiple=True, metavar="SELECTOR", help="dbt node selection (repeatable).")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=120,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another fmb build on the same RESULTS to finish (0: fail at once).",
)
@click.option(
    "--target",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Warehouse engine (profiles.yml): the embedded DuckDB, or a local Spark session (pip install 'fmb[spark]').",
)
def build_command(results: Path, select: tuple[str, ...], wait_s: float, target: str) -> None:
    """Build the warehouse: `dbt build` over every run in RESULTS, through dbt's Python API.

    Writes RESULTS/warehouse.duckdb and the mart Parquet files in RESULTS/marts/<mart>/,
    and runs every data and unit test; the same as `FMB_RESULTS=RESULTS dbt build` from
    the repository root. One build runs at a time per RESULTS; every raw folder and file
    must be readable, and no other program may have the warehouse file open.
    With --target spark the same models build in a local Spark session instead, whose
    warehouse and metastore go to RESULTS/spark; the marts stay there (no Parquet copies).
    """
    from fmb.warehouse.build import build

    outcome = build(
        results,
        select=select,
        wait_s=wait_s,
        on_wait=lambda message: err_console.print(message, highlight=False, markup=False, soft_wrap=True),
        target=None if target == "duckdb" else target,
    )
    _say_recovered(outcome.recovered)
    where = (
        f"warehouse {results / 'warehouse.duckdb'}, marts in {results / 'marts'}"
        if target == "duckdb"
        else f"Spark warehouse and metastore in {results / 'spark'}"
    )
    console.print(f"dbt build: {outcome.summary()}; {where}", highlight=False)


@cli.command()
@results_option("Folder holding warehouse.duckdb (built by dbt build).")
@click.option("--run-id", default=None, help="Run to report on (default: the latest).")
@click.option("--benchmark", default=None, help="With no --run-id: the latest run of this benchmark (general.name).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.md and its charts (default: RESULTS/reports/<benchmark>).",
)
def report(results: Path, run_id: str | None, benchmark: str | None, out: Path | None) -> None:
    """Render report.md and its PNG charts for a run, from the warehouse's marts.

    The report names the best option under the config's budgets (or the nearest misses),
    the best option per instance type, every cell's latency, TTFT, time per output token,
    throughput, error rate and cost, failures, the cost of the run, a comparison with the
    previous run of the same benchmark, the metric definitions and the config used.
    """
    from fmb.reports.render import render_report
    from fmb.warehouse.build import warehouse_path

    made = render_report(warehouse_path(results), out, run_id, results, benchmark)
    console.print(f"report for run {made.run_id}: {made.path}", highlight=False, markup=False)
    fmbench = made.fmbench_files
    if fmbench is not None and fmbench.skipped:
        console.print(
            f"  [yellow]FMBench result files: not written ({escape(fmbench.skipped)})[/]",
            highlight=False,
            soft_wrap=True,
        )
    elif fmbench is not None:
        console.print(
            f"  FMBench result files: {fmbench.per_inference_request_file}, {fmbench.all_metrics_file}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for chart in made.charts:
        if chart.file is None:
            console.print(
                f"  [yellow]{escape(chart.title)}: not drawn ({escape(chart.missing or '')})[/]", highlight=False
            )


@cli.command("mock-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, help="0 picks a free port; the URL is printed.")
@click.option("--ttft-ms", default=40.0, show_default=True, help="Time to the first token.")
@click.option("--itl-ms", default=5.0, show_default=True, help="Time between tokens.")
@click.option("--output-tokens", default=32, show_default=True, help="Tokens per response (capped by max_tokens).")
@click.option("--tokens-per-chunk", default=1, show_default=True)
@click.option("--error-rate", default=0.0, show_default=True, help="Share of requests answered with --error-status.")
@click.option("--error-status", default=500, show_default=True)
@click.option("--throttle-rate", default=0.0, show_default=True, help="Share of requests answered with 429.")
@click.option("--stall-rate", default=0.0, show_default=True, help="Share of requests that stall for --stall-s.")
@click.option("--stall-s", default=30.0, show_default=True)
@click.option("--stall-at", type=click.Choice(["first", "middle"]), default="first", show_default=True)
@click.option(
    "--stream-error-rate",
    default=0.0,
    show_default=True,
    help="Share of streamed responses that break off halfway with an error event.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the fault draws.")
@click.option(
    "--echo-headers",
    type=bool,
    default=False,
    show_default=True,
    help="yes: put the request's headers into the completion text and into error bodies.",
)
@click.option(
    "--reply",
    type=click.Choice(["words", "echo", "judge", "auto"]),
    default="words",
    show_default=True,
    help="What the generated text is: words (w0 w1 ...), echo (the prompt itself: a candidate whose answers "
    "hold what the prompt holds) or judge (a panel judge's JSON verdict: correct exactly when the candidate "
    "answer contains the ground truth), or auto (judge for a judge's prompt, else echo).",
)
@click.option(
    "--max-running",
    default=0,
    show_default=True,
    help="Requests served at once; the others wait in a queue, as in a server's batch (0: no limit).",
)
@click.option(
    "--cloudwatch-url",
    default=None,
    metavar="URL",
    help="Publish SageMaker's and Bedrock's per-request CloudWatch metrics to this CloudWatch endpoint "
    "(e.g. moto's server), as the real services do.",
)
def mock_server(host: str, port: int, **settings: Any) -> None:
    """Serve a mock endpoint with exact timings and injected faults.

    It speaks the OpenAI API, the container APIs (TGI, Triton, DJL, Ollama, llama.cpp,
    custom REST) and the SageMaker and Bedrock runtime APIs (with AWS event streams), for
    tests and for calibrating fmb: with --ttft-ms 40 --itl-ms 5 every streamed response's
    first token leaves 40 ms after the request arrives and each next token 5 ms later.
    Stop it with Ctrl-C.
    """
    import asyncio

    from fmb.collector.mock.behaviour import MockSettings
    from fmb.collector.mock.server import serve

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(MockSettings(**settings), host, port))


def main() -> None:
    cli(prog_name="fmb")

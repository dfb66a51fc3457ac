"""The `fmb` command line: parse options, call one function, print the outcome."""

from __future__ import annotations

import contextlib
import os
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
    from fmb.collector.shard import Shard
    from fmb.config import LoadedConfig
    from fmb.storage import ResultsPlace

# Everything the commands print goes through these streams, which mask the secrets that
# -A and the loaded config make known (see fmb.redact).
_out, _err = RedactingStream(), RedactingStream(stderr=True)
console = Console(file=cast(IO[str], _out))
err_console = Console(file=cast(IO[str], _err), stderr=True)


def _mask_in_output(redactor: Redactor) -> None:
    _out.redact = _err.redact = redactor


def results_option(help_text: str, *, with_config: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--results DIR or s3://BUCKET/PREFIX (default ./results, or the config's write bucket), with a
    help text that says what the command uses it for."""
    return click.option(
        "--results",
        "results",
        type=str,
        default=None,
        metavar="DIR|s3://BUCKET/PREFIX",
        help=help_text + " A folder (default ./results), or s3://BUCKET/PREFIX: worked on through a local "
        "copy in fmb's cache that is pulled before and pushed after the command."
        + (
            " Without it, a config whose aws.s3_and_or_local_file_system is s3 or both writes to its write bucket."
            if with_config
            else ""
        ),
    )


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """CONFIG, -A key=value and --results, shared by every command that reads a config."""
    func = results_option("Folder for payloads, raw tables, the warehouse and reports.", with_config=True)(func)
    func = click.option(
        "-A",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Fill the config's {KEY} placeholders, as FMBench's -A does (repeatable).",
    )(func)
    # A path, or an s3:// or https:// URL (a click.Path would fold the URL's //).
    return click.argument("config", type=str, metavar="CONFIG")(func)


def _load(config: str, assignments: tuple[str, ...], results: Path) -> LoadedConfig:
    from fmb.config import load_config
    from fmb.storage import is_remote

    values = parse_assignments(assignments)
    _mask_in_output(Redactor(*assignment_secrets(values, ())))  # until the config says more
    loaded = load_config(config if is_remote(config) else Path(config), values, results)
    _mask_in_output(loaded.redactor())
    return loaded


def _load_at(config: str, assignments: tuple[str, ...], results: str | None) -> tuple[LoadedConfig, ResultsPlace]:
    """The config, and where its results live: --results, else the config's write bucket, else ./results."""
    from fmb.storage import is_remote, results_place

    loaded = _load(config, assignments, Path(results if results and not is_remote(results) else "results"))
    return loaded, results_place(results, loaded)


def _place(results: str | None) -> ResultsPlace:
    from fmb.storage import results_place

    return results_place(results, assignments=None)


def _say_recovered(recovered: list[Recovered]) -> None:
    """Name the runs whose dead collector `fmb collect` or `fmb build` found and finished."""
    for found in recovered:
        console.print(
            f"Run {found.run_id} was abandoned by a collector that ended without finishing it; recorded "
            f"as abandoned, {found.rows} request row(s) recovered from its journal.",
            highlight=False,
            markup=False,
        )


def _in_place(place: ResultsPlace, path: Path) -> str:
    """A path of the working copy as the user sees it: its S3 URL when the results live in S3."""
    if place.mirror is None:
        return str(path)
    try:
        relative = path.resolve().relative_to(place.local.resolve())
    except ValueError:  # written elsewhere (report --out)
        return str(path)
    return str(place.mirror.remote.child(relative.as_posix()))


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
def config_check(config: str, assignments: tuple[str, ...], results: str | None) -> None:
    """Load CONFIG and print what fmb would run, or why it cannot.

    Shows each experiment's back end, instance type, payload files, concurrency levels
    and the number of requests per cell; warns about keys fmb ignores.
    """
    from fmb.summary import print_config_summary

    loaded, place = _load_at(config, assignments, results)
    print_config_summary(console, loaded, ResultsLayout(place.local))
    if place.mirror is not None:
        console.print(f"Results: {place.mirror.remote} (local copy {place.local})", highlight=False, markup=False)


@cli.command()
@config_options
def prepare(config: str, assignments: tuple[str, ...], results: str | None) -> None:
    """Turn CONFIG's datasets into payload files, one per filter.

    Reads LongBench-format or plain JSONL, hf:ORG/NAME/SUBSET/SPLIT datasets (a local copy,
    else the Hugging Face hub through its cache) or a built-in synthetic dataset, fills the
    prompt template, counts tokens, applies the language and token-length filters, and
    writes FMBench-format payload JSONL files plus the raw/prompts table.
    """
    from fmb.prepare.payloads import prepare as run_prepare
    from fmb.summary import print_prepare_summary

    loaded, place = _load_at(config, assignments, results)
    with place.session() as local:
        outcome = run_prepare(loaded, ResultsLayout(local))
    print_prepare_summary(console, outcome)


class ShardType(click.ParamType):
    """--shard I/N: shard I (1-based) of N."""

    name = "I/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from fmb.collector.shard import Shard

        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ProcessesType(click.ParamType):
    """--processes N|auto: collector processes on this host (auto: one per core)."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        if text.isdigit() and 1 <= int(text) <= 256:
            return int(text)
        self.fail(f"{value!r} is not a number of processes from 1 to 256, or auto (one per core)", param, ctx)


@cli.command()
@config_options
@click.option(
    "--experiment", "experiments", multiple=True, metavar="NAME", help="Run only this experiment (repeatable)."
)
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option(
    "--run-id",
    "run_id",
    metavar="RUN_ID",
    default=None,
    help="Name the new run (default: its UTC start time and a random suffix); the shards of one run share it.",
)
@click.option(
    "--shard",
    "shard",
    type=ShardType(),
    default=None,
    help="Send only shard I of N of the run's requests (e.g. 1/2), with the same --run-id for every shard; "
    "N collectors on one or several hosts writing into one --results folder put the load of one on the server.",
)
@click.option(
    "--resume",
    "resume",
    metavar="RUN_ID",
    default=None,
    help="Send only the missing requests of this cut-short run (interrupted, failed or abandoned), "
    "into the same run; the config must be the one the run was started with.",
)
@click.option(
    "--processes",
    "processes",
    type=ProcessesType(),
    default="1",
    show_default=True,
    help="Collector processes on this host, each with its own event loop, that send the run together and start "
    "every cell at once (auto: one per core); for request rates one Python process cannot keep up with.",
)
def collect(
    config: str,
    assignments: tuple[str, ...],
    results: str | None,
    experiments: tuple[str, ...],
    quiet: bool,
    run_id: str | None,
    shard: Shard | None,
    resume: str | None,
    processes: int,
) -> None:
    """Send CONFIG's requests and write one Parquet row per request.

    Every (experiment, payload file, concurrency) cell runs with continuous concurrency;
    failures, timeouts and throttling are rows with their status. Every finished request
    is on disk at once (a journal beside the Parquet parts), so a killed run loses none;
    the next `fmb collect` or `fmb build` records such a run as abandoned, and
    `--resume RUN_ID` sends what it did not. With `--shard I/N` and one `--run-id`, N
    collectors split the run's requests (see the README); each resumes its own with
    `--resume RUN_ID --shard I/N`. With `--processes N`, N processes on this host do the
    same, starting every cell together; resume such a run with `--resume RUN_ID --processes N`.
    """
    from fmb.collector.collect import collect as run_collect
    from fmb.collector.shard import WHOLE
    from fmb.deployers import still_running
    from fmb.endpoints import resolve_endpoints
    from fmb.paths import slug
    from fmb.summary import print_collect_summary, print_left_running

    if run_id is not None and not run_id.strip():
        raise click.BadParameter("a run id cannot be empty.", param_hint="'--run-id'")
    if run_id is not None and resume is not None:
        raise click.UsageError("--run-id names a new run and --resume an existing one: give one of them.")
    if shard is not None and not shard.is_whole and run_id is None and resume is None:
        raise click.UsageError(
            f"--shard {shard.label} needs --run-id RUN_ID (the same for every shard) or --resume RUN_ID."
        )
    if processes > 1 and shard is not None and not shard.is_whole:
        raise click.UsageError(
            f"--processes {processes} splits the run between processes on this host, --shard {shard.label} between "
            "hosts: give one of them (each host's collector as its own shard)."
        )
    loaded, place = _load_at(config, assignments, results)
    # Pushed every few seconds while it runs; a resumed run needs its rows first.
    pull = [f"payloads/{slug(loaded.name)}", *(["raw"] if resume else [])]
    with place.session(*pull, background=True) as local:
        layout = ResultsLayout(local)
        endpoints = resolve_endpoints(loaded, layout, experiments)
        if processes > 1:
            from fmb.collector.team import collect_in_processes

            outcome = collect_in_processes(
                loaded, layout, endpoints, processes, quiet=quiet, only=experiments, resume=resume, run_id=run_id
            )
        else:
            outcome = run_collect(
                loaded,
                layout,
                endpoints,
                quiet=quiet,
                only=experiments,
                console=console,
                resume=resume,
                run_id=run_id,
                shard=shard or WHOLE,
            )
    results_path = place.local
    _say_recovered(outcome.recovered)
    if outcome.resumed_requests is not None:
        console.print(
            f"Resuming run {outcome.run_id}: {outcome.resumed_requests} missing request(s).",
            highlight=False,
            markup=False,
        )
    print_collect_summary(console, outcome, ResultsLayout(results_path))
    print_left_running(console, still_running(loaded, results_path), str(config), results_path)
    if outcome.status == "interrupted":
        again = f" --processes {processes}" if processes > 1 else ""
        if shard is not None and not shard.is_whole:
            again = f" --shard {shard.label}"
        console.print(
            f"To send the requests this run did not: fmb collect {config} --results {place} "
            f"--resume {outcome.run_id}{again}",
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
    config: str,
    assignments: tuple[str, ...],
    results: str | None,
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

    loaded, place = _load_at(config, assignments, results)
    results_path = place.local  # what was deployed is recorded on this host
    if dry_run:
        if not print_deploy_plans(console, loaded, experiments, host_port):
            sys.exit(1)
        return
    made = deployers.deploy(loaded, results_path, console, attached=False, only=experiments, host_port=host_port)
    if not made:
        console.print("Nothing to deploy (no experiment with deploy: yes, or all already up).")
    print_left_running(console, deployers.still_running(loaded, results_path), str(config), results_path)


@cli.command()
@config_options
@click.option("--run-id", default=None, help="Run to evaluate (default: the benchmark's latest).")
def evaluate(config: str, assignments: tuple[str, ...], results: str | None, run_id: str | None) -> None:
    """Judge the accuracy of a run's responses: FMBench's panel of LLM judges and quantitative scores.

    Reads the settings FMBench keeps in model_eval_all_info.yml (the config's
    model_evaluations), scores every successful response against its ground truth (cosine
    similarity, Levenshtein and token-set ratios, exact match, token F1) and asks every judge
    of the panel for a verdict; every judge call is a row of raw/evaluations. `fmb build`
    turns them into votes, accuracy per cell, judge agreement and the cost of judging.
    """
    from fmb.evaluate.step import evaluate as run_evaluate
    from fmb.summary import print_evaluation_summary

    loaded, place = _load_at(config, assignments, results)
    with place.session("raw", "payloads") as local:
        outcome = run_evaluate(loaded, ResultsLayout(local), console, run_id=run_id)
    print_evaluation_summary(console, outcome)


@cli.command("cloudwatch")
@config_options
@click.option("--run-id", default=None, help="Run whose metrics to fetch (default: the benchmark's latest).")
def cloudwatch_command(config: str, assignments: tuple[str, ...], results: str | None, run_id: str | None) -> None:
    """Fetch a finished run's CloudWatch metrics again, into raw/endpoint_metrics.

    `fmb collect` fetches the CloudWatch metrics of its SageMaker endpoints and Bedrock models
    as soon as the run ends, but CloudWatch publishes datapoints a minute or more late, so
    that fetch misses the last minute or so. Run this a few minutes later: it fetches each
    experiment's window again (first request to last response of the run, widened to whole
    periods) and the new fetch supersedes the earlier one. One-minute datapoints are kept by
    CloudWatch for 15 days. Exits 1 when no experiment's metrics could be fetched.
    """
    from fmb.collector.cloudwatch import refetch

    loaded, place = _load_at(config, assignments, results)
    with place.session("raw") as local:
        outcome = refetch(loaded, ResultsLayout(local), run_id)
    for line in outcome.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if outcome.failed:
        sys.exit(1)


@cli.command()
@config_options
def cleanup(config: str, assignments: tuple[str, ...], results: str | None) -> None:
    """Remove exactly what `fmb deploy` (or `fmb run`) created for CONFIG, as recorded; nothing else."""
    from fmb import deployers

    loaded, place = _load_at(config, assignments, results)
    removed = deployers.cleanup(loaded, place.local, console)
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
    config: str, assignments: tuple[str, ...], results: str | None, quiet: bool, repeat: int, host_port: str | None
) -> None:
    """Run the whole benchmark: prepare, deploy, collect, dbt build, report, cleanup.

    Honours the config's run_steps (FMBench's old and new step names). What this run
    deployed is removed again even when a later step fails or the run is interrupted.
    With --repeat N the collect step runs N times against the same endpoints, into one
    run group, so that the report can tell a change from noise.
    """
    from fmb.run import run

    loaded, place = _load_at(config, assignments, results)
    try:
        # Every run in the location goes into the warehouse, as with a local folder.
        with place.session("raw", background=True) as local:
            outcome = run(
                loaded,
                ResultsLayout(local),
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
        shown = _in_place(place, outcome.report)
        console.print(f"[bold green]Done.[/] Report: {escape(shown)}", highlight=False)


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
def build_command(results: str | None, select: tuple[str, ...], wait_s: float, target: str) -> None:
    """Build the warehouse: `dbt build` over every run in RESULTS, through dbt's Python API.

    Writes RESULTS/warehouse.duckdb and the mart Parquet files in RESULTS/marts/<mart>/,
    and runs every data and unit test; the same as `FMB_RESULTS=RESULTS dbt build` from
    the repository root. One build runs at a time per RESULTS; every raw folder and file
    must be readable, and no other program may have the warehouse file open.
    With --target spark the same models build in a local Spark session instead, whose
    warehouse and metastore go to RESULTS/spark; the marts stay there (no Parquet copies).
    """
    from fmb.warehouse.build import build

    place = _place(results)
    with place.session("raw") as local:
        outcome = build(
            local,
            select=select,
            wait_s=wait_s,
            on_wait=lambda message: err_console.print(message, highlight=False, markup=False, soft_wrap=True),
            target=None if target == "duckdb" else target,
        )
    _say_recovered(outcome.recovered)
    if target == "duckdb":
        warehouse, marts = (_in_place(place, place.local / name) for name in ("warehouse.duckdb", "marts"))
        where = f"warehouse {warehouse}, marts in {marts}"
    else:
        where = f"Spark warehouse and metastore in {place.local / 'spark'}"
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
def report(results: str | None, run_id: str | None, benchmark: str | None, out: Path | None) -> None:
    """Render report.md and its PNG charts for a run, from the warehouse's marts.

    The report names the best option under the config's budgets (or the nearest misses),
    the best option per instance type, every cell's latency, TTFT, time per output token,
    throughput, error rate and cost, failures, the cost of the run, a comparison with the
    previous run of the same benchmark, the metric definitions and the config used.
    """
    from fmb.reports.render import render_report
    from fmb.warehouse.build import warehouse_path

    place = _place(results)
    with place.session("warehouse.duckdb", "payloads") as local:
        if place.mirror is not None and not warehouse_path(local).is_file():
            raise FmbError(f"there is no warehouse.duckdb in {place}.", hint=f"Build it: fmb build --results {place}")
        made = render_report(warehouse_path(local), out, run_id, local, benchmark)
    console.print(f"report for run {made.run_id}: {_in_place(place, made.path)}", highlight=False, markup=False)
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

"""What the commands print: short, normalised summaries (rich tables)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.config.schema import Load
from fmb.config.steps import enabled_steps
from fmb.paths import ResultsLayout

if TYPE_CHECKING:
    from fmb.collector.collect import RunResult
    from fmb.deployers.registry import Deployment
    from fmb.evaluate.step import EvaluationResult
    from fmb.prepare.payloads import PrepareResult


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def request_mode(exp: ResolvedExperiment) -> str:
    """Streamed or not, where that setting comes from, and what a non-streamed run cannot measure."""
    default = exp.stream_source.startswith("default")
    source = "FMBench's default: no stream key is set" if default else f"from {exp.stream_source}"
    if exp.stream:
        return f"streamed ({source})"
    return (
        f"not streamed ({source}); TTFT and time per output token are not measured; "
        "set stream: true in the experiment to measure them"
    )


def deploy_summary(exp: ResolvedExperiment, loaded: LoadedConfig) -> str:
    """Whether fmb deploys the experiment, how, or why it cannot (one line; creates nothing)."""
    from fmb import deployers

    if not exp.spec.deploy:
        return "no (fmb sends to the endpoint the config names)"
    plan = deployers.plan(exp, loaded)
    if plan.deployable:
        return f"yes: {plan.how} (fmb deploy --dry-run shows every setting)"
    return f"yes, but fmb cannot: {'; '.join(plan.problems)}"


def print_deploy_plans(
    console: Console, loaded: LoadedConfig, only: tuple[str, ...] = (), host_port: str | None = None
) -> bool:
    """`fmb deploy --dry-run`: what deploying would create, per experiment; False if one cannot be deployed."""
    from fmb import deployers

    redact = loaded.redactor()
    ok = True
    chosen = [e for e in loaded.experiments if not only or e.name in only]
    for exp in chosen:
        if not exp.spec.deploy:
            console.print(
                f"[bold]{escape(exp.name)}[/]: deploy: no; nothing to create (requests go to "
                f"{escape(redact(exp.endpoint) or '-')})",
                highlight=False,
                soft_wrap=True,
            )
            continue
        plan = deployers.plan(exp, loaded, host_port=host_port)
        console.print(f"[bold]{escape(exp.name)}[/]: {escape(plan.how)}", highlight=False, soft_wrap=True)
        for line in plan.details:
            console.print(f"  {redact(line)}", highlight=False, soft_wrap=True, markup=False)
        for problem in plan.problems:
            ok = False
            console.print(f"  [bold red]cannot deploy:[/] {escape(redact(problem) or '')}", highlight=False)
    if not chosen:
        console.print("No experiment matches.", highlight=False)
    console.print("Dry run: nothing was created.", highlight=False, markup=False)
    return ok


def load_summary(load: Load) -> str:
    """How an experiment's requests are sent, in one line (see fmb.config.schema.Load)."""
    if load.mode == "waves":
        return "FMBench's waves: concurrency requests, wait for all, repeat"
    if load.mode == "trace":
        levels = ", ".join(f"x{v:g}" for v in load.trace_speedups)
        return f"trace replay of {load.trace_file} at {levels}"
    if load.duration_s is not None:
        bound = f"{load.duration_s:g} s"
    else:
        bound = f"{load.requests} requests" if load.requests else "FMBench's request count"
    cap = f"at most {load.max_in_flight} in flight" if load.max_in_flight else "no cap on requests in flight"
    return (
        f"open loop, {load.mode} arrivals at {', '.join(f'{r:g}' for r in load.rates)} requests/s "
        f"({bound} per level, ramp-up {load.ramp_up_s:g} s, seed {load.seed}, {cap})"
    )


def print_config_summary(console: Console, loaded: LoadedConfig, layout: ResultsLayout) -> None:
    from fmb.collector.plan import load_levels, plan_cell, requests_per_cell
    from fmb.errors import FmbError

    cfg = loaded.config
    redact = loaded.redactor()
    steps, _ = enabled_steps(cfg.run_steps)
    console.print(
        f"[bold]{escape(str(loaded.path))}[/]: loads. benchmark [bold]{escape(loaded.name)}[/], "
        f"model {escape(cfg.general.model_name or '-')}",
        highlight=False,
    )
    console.print(
        f"steps: {', '.join(steps) or 'none'}; pricing: {loaded.pricing_path or 'none'}; "
        f"dataset of interest: {cfg.metrics.dataset_of_interest or '-'}",
        highlight=False,
        markup=False,
    )
    budgets = cfg.report
    console.print(
        f"budgets: p95 latency <= {budgets.latency_budget if budgets.latency_budget is not None else '-'} s, "
        f"cost <= {'-' if budgets.cost_per_10k_txn_budget is None else budgets.cost_per_10k_txn_budget} "
        "USD/10k txn, "
        f"error rate <= {budgets.error_rate_budget if budgets.error_rate_budget is not None else '-'}",
        highlight=False,
        markup=False,
    )
    ds = cfg.datasets
    payload_dir = layout.payload_dir(loaded.name)
    total = 0
    for exp in loaded.experiments:
        spec = exp.spec
        console.print(
            f"[bold]experiment {escape(spec.name)}[/]: back end {exp.backend}, "
            f"instance {escape(spec.instance_type or '-')} "
            f"x {exp.instance_count}, deploy {'yes' if spec.deploy else 'no'}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"  request mode: {request_mode(exp)}", highlight=False, soft_wrap=True, markup=False)
        console.print(f"  deploy: {deploy_summary(exp, loaded)}", highlight=False, soft_wrap=True, markup=False)
        console.print(f"  endpoint: {redact(exp.endpoint) or '-'}", highlight=False, soft_wrap=True, markup=False)
        console.print(f"  concurrency levels: {', '.join(str(c) for c in spec.concurrency_levels)}", highlight=False)
        if spec.load.mode != "closed":
            console.print(f"  load: {load_summary(spec.load)}", highlight=False, soft_wrap=True, markup=False)
        for pf in spec.payload_files:
            path = payload_dir / pf
            if path.is_file() and spec.load.is_open:
                n = _count_lines(path)
                levels = []
                for level in load_levels([exp]):
                    try:
                        cell = plan_cell(loaded, level, pf, n, None)
                    except FmbError as exc:
                        levels.append(f"{level.name}: {exc.message}")
                        continue
                    total += cell.requests
                    levels.append(f"{level.name}: {cell.requests}")
                console.print(
                    f"  {pf} ({n} prompts) measured requests per level: {', '.join(levels)}",
                    highlight=False,
                    soft_wrap=True,
                    markup=False,
                )
            elif path.is_file():
                n = _count_lines(path)
                counts = [
                    requests_per_cell(n, c, ds.min_iters_per_combination, ds.max_iters_per_combination)
                    for c in spec.concurrency_levels
                ]
                total += sum(counts)
                cells = ", ".join(f"c={c}: {k}" for c, k in zip(spec.concurrency_levels, counts, strict=True))
                console.print(
                    f"  {pf} ({n} prompts) requests per cell: {cells}", highlight=False, soft_wrap=True, markup=False
                )
            else:
                console.print(
                    f"  {escape(pf)}: not prepared yet; each cell gets concurrency x "
                    f"{ds.min_iters_per_combination}..{ds.max_iters_per_combination} requests",
                    highlight=False,
                    soft_wrap=True,
                )
    if total:
        console.print(f"requests planned for the prepared payload files: {total}", highlight=False)
    for warning in loaded.warnings:
        console.print(f"[yellow]warning:[/] {escape(redact(warning) or '')}", highlight=False, soft_wrap=True)


def print_prepare_summary(console: Console, outcome: PrepareResult) -> None:
    console.print(outcome.counter, highlight=False, markup=False)
    console.print(f"prompt template: {outcome.template}", highlight=False, markup=False)
    table = Table(title="payload files")
    for col in ("payload file", "language", "tokens", "prompts", "written to"):
        table.add_column(col, overflow="fold")
    for f in outcome.filters:
        table.add_row(
            escape(f.payload_file),
            escape(f.language or "any"),
            escape(f"[{f.min_tokens}, {f.max_tokens})"),
            str(f.prompts) if f.prompts else "[bold red]0[/]",
            escape(str(f.path)) if f.path else "[red]nothing: no prompt matched[/]",
        )
    console.print(table)
    for note in outcome.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    for f in outcome.empty_filters:
        console.print(
            f"[yellow]warning:[/] filter {escape(f.payload_file)} (language {escape(f.language or 'any')}, "
            f"{f.min_tokens} <= tokens < {f.max_tokens}) matched no prompt; no payload file was written. "
            "Experiments that list it cannot run until it has prompts.",
            highlight=False,
            soft_wrap=True,
        )


def print_collect_summary(console: Console, outcome: RunResult, layout: ResultsLayout) -> None:
    title = f"run {outcome.run_id}" + ("" if outcome.shard.is_whole else f" (shard {outcome.shard.label})")
    if outcome.processes > 1:
        title += f" ({outcome.processes} collector processes)"
    if not console.is_terminal:  # a log: one unwrapped line per cell, not a table folded at 80 columns
        console.print(f"{title}: {outcome.status}", highlight=False, markup=False)
        for c in outcome.cells:
            p50 = f"{c.p50_ms / 1000:.3f} s" if c.p50_ms is not None else "-"
            console.print(
                f"  {c.cell.label}: {c.requests} requests, {c.errors} errors, p50 latency {p50}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        _print_collect_footer(console, outcome, layout)
        return
    table = Table(title=escape(f"{title}: {outcome.status}"))
    for col in ("experiment", "payload file", "concurrency", "requests", "errors", "p50 latency (s)"):
        table.add_column(col, overflow="fold")
    for c in outcome.cells:
        table.add_row(
            escape(c.cell.experiment),
            escape(c.cell.payload_file),
            str(c.cell.concurrency),
            str(c.requests),
            str(c.errors) if not c.errors else f"[red]{c.errors}[/]",
            f"{c.p50_ms / 1000:.3f}" if c.p50_ms is not None else "-",
        )
    console.print(table)
    _print_collect_footer(console, outcome, layout)


def _print_collect_footer(console: Console, outcome: RunResult, layout: ResultsLayout) -> None:
    if outcome.message:
        console.print(f"[yellow]{escape(outcome.message)}[/]", highlight=False)
    console.print(f"{outcome.rows} request rows in {layout.raw / 'requests'}", highlight=False, markup=False)
    if outcome.client_busy:
        console.print(
            f"[yellow]warning:[/] the client machine was busy ({escape('; '.join(outcome.client_busy))}); "
            "its timings may be inflated. Collect again on a quieter machine, or with lower concurrency.",
            highlight=False,
            soft_wrap=True,
        )


def print_evaluation_summary(console: Console, outcome: EvaluationResult) -> None:
    """What `fmb evaluate` did: responses judged, verdicts per judge, failed calls."""
    console.print(
        f"evaluation {outcome.evaluation_id} of run {outcome.run_id}: {outcome.status}; "
        f"{outcome.responses} response(s), {outcome.judge_calls} judge call(s), "
        f"{outcome.failed_calls} without a verdict",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for judge, counts in sorted(outcome.verdicts.items()):
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        console.print(f"  {judge}: {shown}", highlight=False, markup=False, soft_wrap=True)
    if outcome.message:
        console.print(f"[yellow]note:[/] {escape(outcome.message)}", highlight=False, soft_wrap=True)
    if outcome.settings_file:
        console.print(f"settings: {outcome.settings_file}", highlight=False, markup=False, soft_wrap=True)
    console.print("Accuracy per cell, votes and judge agreement: fmb build, then the accuracy marts.", highlight=False)


def print_left_running(console: Console, deployments: list[Deployment], config: str, results: Path) -> None:
    """Say loudly what fmb deployed and left running, and how to remove it."""
    if not deployments:
        return
    what = ", ".join(f"{d.experiment} ({d.kind} {d.endpoint})" for d in deployments)
    console.print(
        f"[bold red]Still running, deployed by fmb:[/] {escape(what)}. Cloud endpoints cost money until removed: "
        f"[bold]fmb cleanup {escape(config)} --results {escape(str(results))}[/]",
        highlight=False,
        soft_wrap=True,
    )

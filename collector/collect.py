"""`fmb collect`: run the planned cells of a config against its endpoints and record the run.

The plan comes from :mod:`fmb.collector.plan`, the run's tables are written by
:mod:`fmb.collector.run_tables`, the endpoints are resolved by the run layer
(:mod:`fmb.endpoints`); this module owns the event loop that sends the requests.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Protocol

from rich.console import Console

from fmb.collector import cloudwatch, event_loop
from fmb.collector.client_telemetry import ClientLoad, client_sampling
from fmb.collector.host_telemetry import host_telemetry
from fmb.collector.plan import Plan, load_levels, make_plan
from fmb.collector.progress import CellProgress
from fmb.collector.recovery import Recovered, recover_abandoned
from fmb.collector.resume import Resumption, check_new_run, plan_resumption
from fmb.collector.run_tables import RunRecorder, new_run_id
from fmb.collector.runner import Cell, CellStats, Policy, RowMaker, run_cell
from fmb.collector.server_metrics import server_scraper
from fmb.collector.shard import WHOLE, Shard
from fmb.collector.sweep import LevelMeter, Sweep
from fmb.collector.targets import make_target
from fmb.collector.targets.base import Target
from fmb.collector.team import Team
from fmb.collector.writer import RequestWriter
from fmb.config import LoadedConfig, ResolvedExperiment, limits
from fmb.config.schema import Telemetry
from fmb.endpoints import Endpoint
from fmb.errors import CollectError, FmbError
from fmb.paths import ResultsLayout
from fmb.prepare.hub import Hub
from fmb.prepare.payloads import tokenizer_candidates
from fmb.prepare.tokens import load_counter


@dataclass
class CellResult:
    cell: Cell
    requests: int
    errors: int
    p50_ms: float | None
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # the successful requests', sorted


@dataclass
class RunResult:
    run_id: str
    status: str
    rows: int = 0
    cells: list[CellResult] = field(default_factory=list)
    message: str | None = None
    recovered: list[Recovered] = field(default_factory=list)  # abandoned runs found and finished first
    resumed_requests: int | None = None  # with --resume: the missing requests sent
    client_busy: list[str] = field(default_factory=list)  # why the client machine was busy, if it was
    shard: Shard = WHOLE  # the shard of the run this collector sent (see fmb.collector.shard)
    processes: int = 1  # the collector processes that sent the run (see fmb.collector.team)
    # When each experiment's cells began and ended (UTC), in this collection session; an
    # experiment stopped by an error or Ctrl-C ends when it stopped.
    experiment_windows: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    # Where each experiment's requests went (a SageMaker endpoint name, a Bedrock model id, a URL),
    # unredacted: the CloudWatch fetch asks for these.
    experiment_addresses: dict[str, str] = field(default_factory=dict)


class Stage(Protocol):
    """An endpoint stood up just before its experiment's cells and taken down right after them.

    `fmb run` stages the inference containers of a config with several of them on this
    host, one experiment at a time, as FMBench deploys them: they would share its ports
    and accelerators. ``up`` blocks until the endpoint answers; ``down`` removes it.
    """

    def up(self) -> Endpoint: ...

    def down(self, failed: bool) -> None:
        """Remove what ``up`` made. With ``failed`` (the cells ended in an error) a problem removing it is
        reported, not raised, so that it never hides the error that ended the cells."""
        ...


@contextmanager
def _interruptible() -> Iterator[None]:
    """While the event loop is blocked (a deploy between experiments), Ctrl-C and SIGTERM interrupt at once.

    The loop's own SIGTERM handler (which cancels the main task) is set aside meanwhile, so a
    SIGTERM is acted on once, as a KeyboardInterrupt here, and not again as a cancellation.
    """
    with _signals(_raise_interrupt):
        yield


@contextmanager
def _deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (taking a deployment down), then interrupt."""
    received: list[int] = []
    with _signals(lambda signum, frame: received.append(signum)):
        yield
    if received:
        raise KeyboardInterrupt


@contextmanager
def _signals(handler: Any) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    try:
        previous_int = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        loop.remove_signal_handler(signal.SIGTERM)
    except (NotImplementedError, RuntimeError):
        pass
    previous_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
        if main is not None:
            try:
                loop.add_signal_handler(signal.SIGTERM, main.cancel)
            except (NotImplementedError, RuntimeError):
                pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _target(loaded: LoadedConfig, exp: ResolvedExperiment, endpoint: Endpoint | None) -> Target:
    from botocore.exceptions import BotoCoreError

    from fmb.collector.targets.copies import CopiesTarget

    load = exp.spec.load
    # Open loop: as many connections as requests may be in flight (without a cap, the most fmb allows).
    connections = (load.max_in_flight or limits.CONCURRENCY.value) if load.is_open else max(exp.spec.concurrency_levels)
    try:
        if endpoint is not None and len(endpoint.copies) > 1:
            return CopiesTarget.for_urls(exp, loaded, connections, endpoint.copies)
        if endpoint is not None and endpoint.address is not None:
            exp = replace(exp, endpoint=endpoint.address)
        return make_target(exp, loaded, max_connections=connections)
    except BotoCoreError as exc:  # e.g. a profile given with -A aws_profile that does not exist
        raise CollectError(f"experiment {exp.name!r}: cannot set up the AWS client ({exc}).") from None


def _targets(
    loaded: LoadedConfig, plan: Plan, endpoints: dict[str, Endpoint], staged: dict[str, Stage]
) -> dict[str, Target]:
    """A target per experiment; a staged one gets its target once it is stood up."""
    return {
        exp.name: _target(loaded, exp, endpoints.get(exp.name))
        for exp in plan.experiments
        if exp.base_name not in staged
    }


async def _run_experiments(
    loaded: LoadedConfig,
    plan: Plan,
    layout: ResultsLayout,
    recorder: RunRecorder,
    progress: CellProgress,
    result: RunResult,
    endpoints: dict[str, Endpoint],
    resumption: Resumption | None,
    stages: dict[str, Stage],
    team: Team | None,
) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    if main is not None:
        try:
            loop.add_signal_handler(signal.SIGTERM, main.cancel)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
    # The tokenizer prepare used; a hub model's from the cache only (no network on the event loop).
    hub = Hub.from_env(loaded.hf_token(), loaded.hf_token_file(), cache_only=True)
    counter, _ = load_counter(tokenizer_candidates(loaded, hub))
    session = resumption.session if resumption else 0
    targets: dict[str, Target] = {}
    closed: set[str] = set()  # staged experiments' targets, closed once their cells were done
    endpoints = dict(endpoints)
    try:
        targets = _targets(loaded, plan, endpoints, stages)
        for target in targets.values():
            await target.check_reachable()
        recorder.lock({"tokenizer": str(getattr(counter, "path", "") or "") or None})
        if resumption is None:
            recorder.write_experiments(plan, targets, endpoints)
            recorder.write_cells(plan)
            recorder.write_pricing()
            recorder.ensure_prompts(plan, counter)
        recorder.write_run("running")
        telemetry = loaded.config.telemetry or Telemetry()
        sweep = Sweep()
        async with client_sampling(telemetry, layout, recorder.run_id) as load:

            async def measure(exp: ResolvedExperiment, cells: list[Cell]) -> None:
                scraping = _scraping(loaded, layout, recorder, progress, exp, endpoints)
                with scraping if team is None or team.lead else nullcontext():
                    await _run_experiment(
                        exp, cells, plan, layout, recorder, progress, result, targets[exp.name], counter, session,
                        resumption, load, sweep, team,
                    )  # fmt: skip

            # An experiment's load levels (see fmb.collector.plan.load_levels) follow each other and share
            # its endpoint: a staged one is stood up once for all of them.
            for base, levels in groupby(plan.experiments, key=lambda e: e.base_name):
                todo = []
                for exp in levels:
                    cells = plan.cells[exp.name]
                    if resumption is not None:
                        cells = [c for c in cells if c in resumption.missing]
                    if cells:
                        todo.append((exp, cells))
                stage = stages.get(base)
                if stage is None:
                    for exp, cells in todo:
                        await measure(exp, cells)
                    continue
                if not todo:
                    continue
                failed = True
                try:
                    with _interruptible():
                        endpoint = stage.up()
                    for exp, _ in todo:
                        endpoints[exp.name] = endpoint
                        targets[exp.name] = _target(loaded, exp, endpoint)
                        await targets[exp.name].check_reachable()
                    if resumption is None:  # now with where its requests go, and how long deploying took
                        recorder.write_experiments(plan, targets, endpoints)
                    for exp, cells in todo:
                        await measure(exp, cells)
                    failed = False
                finally:
                    with _deferred():
                        try:
                            for exp, _ in todo:
                                target = targets.get(exp.name)
                                if target is not None:
                                    closed.add(exp.name)  # kept in targets: the experiments table still describes it
                                    await target.close()
                        finally:
                            stage.down(failed)
    finally:
        for name, target in targets.items():
            if name not in closed:
                await target.close()


def _scraping(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    recorder: RunRecorder,
    progress: CellProgress,
    exp: ResolvedExperiment,
    endpoints: dict[str, Endpoint],
) -> AbstractContextManager[object]:
    """The experiment's server metrics, scraped in a thread while its cells run (see fmb.collector.server_metrics)."""
    return server_scraper(
        loaded, layout, recorder.run_id, exp, endpoints.get(exp.name), console=progress.console, quiet=progress.quiet
    )


async def _run_experiment(
    exp: ResolvedExperiment,
    cells: list[Cell],
    plan: Plan,
    layout: ResultsLayout,
    recorder: RunRecorder,
    progress: CellProgress,
    result: RunResult,
    target: Target,
    counter: Any,
    session: int,
    resumption: Resumption | None,
    load: ClientLoad,
    sweep: Sweep,
    team: Team | None,
) -> None:
    """The cells of one experiment, in order; every row is written as it finishes.

    A sweep (``load.stop_past_knee``) leaves out the levels above the one that stopped the rise
    (see :mod:`fmb.collector.sweep`) and records them, with why, in the run's cells table.
    """
    shard = recorder.shard
    load_spec = exp.spec.load
    rows = RowMaker(recorder.run_id, target.stream, counter, recorder.redact, session, shard)
    rows.count_prompts([r for payload_file in {c.payload_file for c in cells} for r in plan.prompts[payload_file]])
    writer = RequestWriter(layout.requests_dir(exp.name, recorder.run_id), counter, tag=shard.tag)
    policy = Policy(exp.spec.request_timeout_s, exp.spec.max_attempts, exp.spec.retry_backoff_s)
    started_at = datetime.now(UTC)
    result.experiment_addresses[exp.name] = target.describe()
    try:
        for cell in cells:
            curve = (exp.base_name, cell.payload_file)
            if curve in sweep.stopped:  # a sweep past its knee: the higher levels are not sent
                sweep.skipped[cell] = sweep.stopped[curve]
                recorder.write_cells(plan, sweep.skipped)
                progress.skip_cell(cell, f"skipped: a lower level stopped the sweep ({sweep.stopped[curve]})")
                continue
            missing = resumption.missing[cell] if resumption else None
            stats = CellStats()
            # Only a sweep with a time-per-token objective counts tokens on the event loop.
            meter = LevelMeter(exp.spec.slo, counter if load_spec.stop_past_knee and exp.spec.slo.tpot_ms else None)
            progress.start_cell(replace(cell, requests=_requests_to_send(cell, shard, missing)), stats)

            def sink(
                row: dict[str, Any], stats: CellStats = stats, writer: RequestWriter = writer, meter: LevelMeter = meter
            ) -> None:
                writer.add(row)
                meter.add(row)
                progress.update(stats)

            warmup = resumption is None or cell not in resumption.warmed_up
            origin = None if team is None else await team.start_cell()
            try:
                await run_cell(
                    target,
                    cell,
                    plan.prompts[cell.payload_file],
                    rows,
                    sink,
                    policy,
                    stats,
                    missing,
                    warmup,
                    load,
                    shard,
                    origin,
                )
            finally:
                progress.update(stats)
                result.cells.append(CellResult(cell, stats.done, stats.errors, stats.p50_ms(), stats.latencies_ms))
            writer.flush()  # between cells nothing is in flight: make the cell's rows durable
            if load_spec.stop_past_knee:
                sweep.observe(curve, meter, load_spec)
    finally:
        writer.close()
        result.rows += writer.rows_written
        result.experiment_windows[exp.name] = (started_at, datetime.now(UTC))


def _requests_to_send(cell: Cell, shard: Shard, missing: list[int] | None) -> int:
    """The measured requests of ``cell`` this collector sends: the shard's, or the missing ones of a resumed run."""
    if missing is not None:
        return len(missing)  # a resumed shard's missing requests are its own
    return len(shard.indices(cell.concurrency, range(cell.warmup, cell.warmup + cell.requests)))


def collect(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    endpoints: dict[str, Endpoint],
    *,
    quiet: bool = False,
    only: tuple[str, ...] = (),
    console: Console | None = None,
    resume: str | None = None,
    run_group: str | None = None,
    repeat_index: int = 1,
    run_id: str | None = None,
    stages: dict[str, Stage] | None = None,
    shard: Shard = WHOLE,
    team: Team | None = None,
) -> RunResult:
    """Run every cell of the config and record the run; rows already written are never lost.

    ``endpoints`` says where each experiment's requests go (see :func:`fmb.endpoints.resolve_endpoints`).
    Runs of earlier collectors that were killed are finished first (see
    :mod:`fmb.collector.recovery`). With ``resume``, only the missing requests of that run's
    cells are sent, into the same run. ``run_group`` and ``repeat_index`` place the run in a
    group of repeated runs (`fmb run --repeat N`); by default it is a group of its own.
    ``run_id`` names a new run (`fmb run` names it before deploying); by default a new id.
    ``stages`` are experiments whose endpoint is stood up right before their cells and
    removed right after them (see :class:`Stage`); their ``endpoints`` entry is a stand-in.
    ``shard`` sends only that shard's part of the run (see :mod:`fmb.collector.shard`); the other
    shards are collected by other calls with the same ``run_id`` (or ``resume``). ``team`` makes this
    one of the run's collector processes on this host (see :mod:`fmb.collector.team`).
    """
    lead = team is None or team.lead
    recovered = recover_abandoned(layout) if team is None else []  # the processes' parent recovers
    loaded = replace(
        loaded,
        experiments=load_levels(
            [replace(e, endpoint=endpoints[e.name].address) if e.name in endpoints else e for e in loaded.experiments]
        ),
    )
    # A load level's requests go where its experiment's go.
    endpoints = {e.name: endpoints[e.base_name] for e in loaded.experiments if e.base_name in endpoints}
    plan = make_plan(loaded, layout, only)
    sweeping = [e.base_name for e in plan.experiments if e.spec.load.stop_past_knee]
    if sweeping and not shard.is_whole:
        raise CollectError(
            f"--shard {shard.label}: experiment {sweeping[0]!r} sweeps (load.stop_past_knee), and a shard sees only "
            "part of each level's throughput, so it cannot tell where to stop.",
            hint="Collect a sweep on one collector, or set load.stop_past_knee: false.",
        )
    resumption = plan_resumption(loaded, layout, resume, plan.cells, shard) if resume else None
    if resumption is None and run_id is not None:
        check_new_run(loaded, layout, run_id, shard, plan.cells)
    if resumption is not None:  # a resumed run stays in its group
        run_group, repeat_index = resumption.run.get("run_group"), resumption.run.get("repeat_index") or 1
    recorder = RunRecorder(
        loaded,
        layout,
        resume or run_id or new_run_id(),
        run_group=run_group,
        repeat_index=repeat_index,
        shard=shard,
    )
    result = RunResult(recorder.run_id, "running", recovered=recovered, shard=shard)
    if resumption is not None:
        recorder.started_at = resumption.run["started_at"]
        result.resumed_requests = resumption.requests
        if not resumption.missing:
            result.status = resumption.run["status"]
            result.message = "nothing to resume: every planned request of the run has a row"
            return result
    sigterm = signal.getsignal(signal.SIGTERM)
    switch = sys.getswitchinterval()
    # The writer thread gives the GIL back to the event loop within 1 ms instead of 5.
    sys.setswitchinterval(0.001)
    try:
        cells = [c for cs in plan.cells.values() for c in cs if resumption is None or c in resumption.missing]
        requests = sum(_requests_to_send(c, shard, resumption.missing[c] if resumption else None) for c in cells)
        with (
            CellProgress(quiet, console, total_cells=len(cells), total_requests=requests) as progress,
            # Samples this host off the event loop while the requests go to a server fmb deployed here.
            host_telemetry(loaded, layout, recorder.run_id, endpoints, plan.cells, console=console, quiet=quiet)
            if lead
            else nullcontext(),
        ):
            event_loop.run(
                _run_experiments(
                    loaded, plan, layout, recorder, progress, result, endpoints, resumption, stages or {}, team
                )
            )
    except BaseExceptionGroup as group:  # an error inside the runner's task group
        first = group.exceptions[0]
        if recorder.recorded:
            recorder.write_run("failed", f"{type(first).__name__}: {first}", ended=True)
        raise first from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        result.status, result.message = "interrupted", "stopped by the user (Ctrl-C or SIGTERM)"
        recorder.write_run(result.status, result.message, ended=True)
    except FmbError as exc:
        if not recorder.recorded:
            raise  # nothing was sent (e.g. an unreachable endpoint): there is no run to record
        recorder.write_run("failed", exc.message, ended=True)
        raise
    except Exception as exc:
        if recorder.recorded:
            recorder.write_run("failed", f"{type(exc).__name__}: {exc}", ended=True)
        raise
    else:
        result.status = "completed"
        recorder.write_run(result.status, result.message, ended=True)
    finally:
        recorder.unlock()  # only once the run's end is recorded: a free lock on a running run means abandoned
        sys.setswitchinterval(switch)
        signal.signal(signal.SIGTERM, sigterm)  # the event loop's run leaves the default handler behind
    result.client_busy = recorder.busy_reasons()
    if not lead:
        return result
    # The endpoints' own CloudWatch metrics for the experiments that ran (SageMaker, Bedrock).
    cloudwatch.after_collect(
        loaded,
        layout,
        result.run_id,
        result.experiment_windows,
        addresses=result.experiment_addresses,
        whole_run=resumption is not None,
        console=console,
        quiet=quiet,
    )
    return result

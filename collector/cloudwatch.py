"""CloudWatch metrics of SageMaker endpoints and Bedrock models, fetched for a run's experiment windows.

At the end of `fmb collect` (also after Ctrl-C, for the experiments that ran) the CloudWatch
metrics of every SageMaker and Bedrock experiment are fetched with GetMetricData over the
experiment's window, widened to whole periods (``telemetry.cloudwatch_period_s``, default
60 s), into ``raw/endpoint_metrics``: one row per datapoint and statistic, in long format.
Each fetch is one part file with its own ``fetched_at``; CloudWatch publishes datapoints a
minute or more after the fact, so the fetch right after a run misses the last minute and
`fmb cloudwatch CONFIG` fetches again later (see :func:`refetch`). A later fetch of a run and
experiment supersedes an earlier one; the warehouse keeps the latest.

Dimensions: SageMaker ``EndpointName`` (the endpoint the requests went to) and ``VariantName``
(``production_variant_name``, default ``AllTraffic``) in both of its namespaces; Bedrock
``ModelId`` (the model id, inference profile or ARN the requests went to).

The metrics (:data:`METRICS`), the statistics fetched and the unit CloudWatch documents
(``None`` is CloudWatch's own unit name for a plain number; a null unit: undocumented; the
unit of a SampleCount row is always ``Count``):

=========================  ===========================  =====================================  ============
namespace                  metric                       statistics                             unit
=========================  ===========================  =====================================  ============
AWS/SageMaker              Invocations                  Sum                                    None
AWS/SageMaker              InvocationsPerInstance       Sum                                    None
AWS/SageMaker              Invocation4XXErrors          Sum                                    None
AWS/SageMaker              Invocation5XXErrors          Sum                                    None
AWS/SageMaker              InvocationModelErrors        Sum                                    None
AWS/SageMaker              ModelLatency                 Average, Minimum, Maximum, SampleCount  Microseconds
AWS/SageMaker              OverheadLatency              Average, Minimum, Maximum, SampleCount  Microseconds
AWS/SageMaker              ModelSetupTime               Average, Maximum, SampleCount          Microseconds
AWS/SageMaker              ConcurrentRequestsPerModel   Average, Maximum                       None
/aws/sagemaker/Endpoints   CPUUtilization               Average, Maximum                       Percent
/aws/sagemaker/Endpoints   MemoryUtilization            Average, Maximum                       Percent
/aws/sagemaker/Endpoints   DiskUtilization              Average, Maximum                       Percent
/aws/sagemaker/Endpoints   GPUUtilization               Average, Maximum                       Percent
/aws/sagemaker/Endpoints   GPUMemoryUtilization         Average, Maximum                       Percent
/aws/sagemaker/Endpoints   InferenceLatency             Average, Maximum                       (null)
AWS/Bedrock                Invocations                  Sum                                    Count
AWS/Bedrock                InvocationClientErrors       Sum                                    Count
AWS/Bedrock                InvocationServerErrors       Sum                                    Count
AWS/Bedrock                InvocationThrottles          Sum                                    Count
AWS/Bedrock                InputTokenCount              Sum                                    Count
AWS/Bedrock                OutputTokenCount             Sum                                    Count
AWS/Bedrock                CacheReadInputTokenCount     Sum                                    Count
AWS/Bedrock                CacheWriteInputTokenCount    Sum                                    Count
AWS/Bedrock                EstimatedTPMQuotaUsage       Sum                                    Count
AWS/Bedrock                InvocationLatency            Average, Minimum, Maximum, SampleCount  Milliseconds
AWS/Bedrock                TimeToFirstToken             Average, Minimum, Maximum, SampleCount  Milliseconds
=========================  ===========================  =====================================  ============

FMBench's sagemaker_metrics.py fetches the same SageMaker metrics (InferenceLatency is its
name in /aws/sagemaker/Endpoints). A metric an endpoint does not publish (GPU metrics on a
CPU instance, ModelSetupTime outside serverless) simply has no rows. A fetch that fails (no
permission, no credentials, CloudWatch unreachable) is a note; it never fails the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fmb.collector.sample_parts import SampleParts
from fmb.collector.schemas import ENDPOINT_METRICS
from fmb.errors import FmbError
from fmb.paths import partition_value

if TYPE_CHECKING:
    from rich.console import Console

    from fmb.config import LoadedConfig
    from fmb.paths import ResultsLayout

SAGEMAKER = "AWS/SageMaker"
SAGEMAKER_ENDPOINTS = "/aws/sagemaker/Endpoints"
BEDROCK = "AWS/Bedrock"

SUM = ("Sum",)
SPREAD = ("Average", "Minimum", "Maximum", "SampleCount")
LEVEL = ("Average", "Maximum")
MAX_QUERIES = 500  # GetMetricData's limit of queries per call
DELAY_HINT = (
    "CloudWatch publishes datapoints a minute or more late: `fmb cloudwatch CONFIG --run-id {run_id}` "
    "fetches them again later"
)


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    stats: tuple[str, ...]
    unit: str | None  # as CloudWatch documents the metric; None where it does not say


# backend -> the metrics fetched for its experiments (the module docstring's table).
METRICS: dict[str, tuple[Metric, ...]] = {
    "sagemaker": (
        Metric(SAGEMAKER, "Invocations", SUM, "None"),
        Metric(SAGEMAKER, "InvocationsPerInstance", SUM, "None"),
        Metric(SAGEMAKER, "Invocation4XXErrors", SUM, "None"),
        Metric(SAGEMAKER, "Invocation5XXErrors", SUM, "None"),
        Metric(SAGEMAKER, "InvocationModelErrors", SUM, "None"),
        Metric(SAGEMAKER, "ModelLatency", SPREAD, "Microseconds"),
        Metric(SAGEMAKER, "OverheadLatency", SPREAD, "Microseconds"),
        Metric(SAGEMAKER, "ModelSetupTime", ("Average", "Maximum", "SampleCount"), "Microseconds"),
        Metric(SAGEMAKER, "ConcurrentRequestsPerModel", LEVEL, "None"),
        Metric(SAGEMAKER_ENDPOINTS, "CPUUtilization", LEVEL, "Percent"),
        Metric(SAGEMAKER_ENDPOINTS, "MemoryUtilization", LEVEL, "Percent"),
        Metric(SAGEMAKER_ENDPOINTS, "DiskUtilization", LEVEL, "Percent"),
        Metric(SAGEMAKER_ENDPOINTS, "GPUUtilization", LEVEL, "Percent"),
        Metric(SAGEMAKER_ENDPOINTS, "GPUMemoryUtilization", LEVEL, "Percent"),
        Metric(SAGEMAKER_ENDPOINTS, "InferenceLatency", LEVEL, None),
    ),
    "bedrock": (
        Metric(BEDROCK, "Invocations", SUM, "Count"),
        Metric(BEDROCK, "InvocationClientErrors", SUM, "Count"),
        Metric(BEDROCK, "InvocationServerErrors", SUM, "Count"),
        Metric(BEDROCK, "InvocationThrottles", SUM, "Count"),
        Metric(BEDROCK, "InputTokenCount", SUM, "Count"),
        Metric(BEDROCK, "OutputTokenCount", SUM, "Count"),
        Metric(BEDROCK, "CacheReadInputTokenCount", SUM, "Count"),
        Metric(BEDROCK, "CacheWriteInputTokenCount", SUM, "Count"),
        Metric(BEDROCK, "EstimatedTPMQuotaUsage", SUM, "Count"),
        Metric(BEDROCK, "InvocationLatency", SPREAD, "Milliseconds"),
        Metric(BEDROCK, "TimeToFirstToken", SPREAD, "Milliseconds"),
    ),
}


@dataclass(frozen=True)
class Source:
    """One experiment's metrics: which back end, where, with which dimensions, over which window."""

    experiment: str
    backend: str
    region: str | None
    dimensions: tuple[tuple[str, str], ...]
    start: datetime
    end: datetime


@dataclass
class Outcome:
    """What a fetch wrote: datapoints per experiment, and notes on what could not be fetched."""

    datapoints: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    run_id: str = ""
    fetched_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.datapoints.values())

    @property
    def failed(self) -> bool:
        """Nothing could be fetched, and the notes say why."""
        return not self.datapoints and bool(self.notes)

    def lines(self) -> list[str]:
        """What `fmb cloudwatch` prints: the notes, then what was fetched."""
        found = [f"cloudwatch: {text}" for text in self.notes]
        if self.datapoints:
            counts = ", ".join(f"{n} for {name}" for name, n in self.datapoints.items())
            found.append(f"cloudwatch: fetched {self.total} datapoint(s) of run {self.run_id} ({counts}).")
        else:
            found.append(f"cloudwatch: no datapoint of run {self.run_id} was written.")
        return found


def widen(start: datetime, end: datetime, period_s: int) -> tuple[datetime, datetime]:
    """The window grown to whole periods counted from the Unix epoch, as CloudWatch aligns them."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = int((start - epoch).total_seconds() // period_s) * period_s
    last = (int((end - epoch).total_seconds() // period_s) + 1) * period_s  # the period holding ``end`` too
    return epoch + timedelta(seconds=first), epoch + timedelta(seconds=last)


def queries(source: Source, period_s: int) -> list[tuple[dict[str, Any], Metric, str]]:
    """GetMetricData queries for a source: one per metric and statistic, with the metric and statistic."""
    dimensions = [{"Name": k, "Value": v} for k, v in source.dimensions]
    found: list[tuple[dict[str, Any], Metric, str]] = []
    for metric in METRICS[source.backend]:
        for stat in metric.stats:
            query = {
                "Id": f"q{len(found)}",
                "MetricStat": {
                    "Metric": {"Namespace": metric.namespace, "MetricName": metric.name, "Dimensions": dimensions},
                    "Period": period_s,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            found.append((query, metric, stat))
    return found


def fetch(
    loaded: LoadedConfig,
    sources: list[Source],
    run_id: str,
    period_s: int,
    *,
    fetched_at: datetime | None = None,
) -> tuple[list[dict[str, Any]], Outcome]:
    """Rows of raw/endpoint_metrics for the sources; an experiment whose fetch fails is a note instead."""
    from botocore.exceptions import BotoCoreError, ClientError

    from fmb import aws

    fetched_at = fetched_at or datetime.now(UTC)
    outcome = Outcome(run_id=run_id, fetched_at=fetched_at)
    rows: list[dict[str, Any]] = []
    clients: dict[str | None, Any] = {}
    for source in sources:
        try:
            if source.region not in clients:
                session = aws.session(loaded, source.region)
                if session.get_credentials() is None:
                    raise _NoCredentials
                clients[source.region] = aws.client(
                    "cloudwatch", loaded, source.region, read_timeout_s=30, boto_session=session
                )
            found = list(_datapoints(clients[source.region], source, run_id, period_s, fetched_at, outcome))
        except _NoCredentials:
            outcome.notes.append(f"{source.experiment}: not fetched, no AWS credentials were found")
            continue
        except ClientError as exc:
            error = exc.response.get("Error", {})
            why = f"{error.get('Code') or 'ClientError'}: {error.get('Message') or exc}"
            outcome.notes.append(f"{source.experiment}: not fetched ({why})")
            continue
        except BotoCoreError as exc:
            outcome.notes.append(f"{source.experiment}: not fetched ({type(exc).__name__}: {exc})")
            continue
        rows += found
        if found:
            outcome.datapoints[source.experiment] = len(found)
        else:
            outcome.notes.append(f"{source.experiment}: CloudWatch has no datapoint for its endpoint in the window yet")
    return rows, outcome


class _NoCredentials(Exception):
    pass


def _datapoints(
    client: Any, source: Source, run_id: str, period_s: int, fetched_at: datetime, outcome: Outcome
) -> Iterator[dict[str, Any]]:
    start, end = widen(source.start, source.end, period_s)
    asked = queries(source, period_s)
    by_id = {query["Id"]: (metric, stat) for query, metric, stat in asked}
    dimensions = json.dumps(dict(source.dimensions), sort_keys=True)
    troubles: set[str] = set()
    for offset in range(0, len(asked), MAX_QUERIES):
        batch = [query for query, _, _ in asked[offset : offset + MAX_QUERIES]]
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "MetricDataQueries": batch,
                "StartTime": start,
                "EndTime": end,
                "ScanBy": "TimestampAscending",
            }
            if token:
                kwargs["NextToken"] = token
            response = client.get_metric_data(**kwargs)
            for result in response.get("MetricDataResults", []):
                metric, stat = by_id[result["Id"]]
                if result.get("StatusCode") in ("InternalError", "Forbidden"):
                    troubles.add(f"{metric.name} {stat}: {result['StatusCode']}")
                for timestamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    yield {
                        "run_id": run_id,
                        "experiment": source.experiment,
                        "fetched_at": fetched_at,
                        "namespace": metric.namespace,
                        "metric": metric.name,
                        "dimensions": dimensions,
                        "stat": stat,
                        "period_s": period_s,
                        "period_started_at": timestamp.astimezone(UTC),
                        "value": float(value),
                        "unit": "Count" if stat == "SampleCount" else metric.unit,
                    }
            token = response.get("NextToken")
            if not token:
                break
    if troubles:
        outcome.notes.append(f"{source.experiment}: CloudWatch left out {', '.join(sorted(troubles))}")


def sources(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    run_id: str,
    windows: dict[str, tuple[datetime, datetime]],
    addresses: dict[str, str] | None = None,
) -> list[Source]:
    """A source per SageMaker or Bedrock experiment with a window, from the run's experiments table.

    The table says where the requests went (a deployed endpoint's name is only known there) and
    the region; the config gives the production variant. ``addresses`` (the collector's own
    record of where the requests went) win over the table, whose copy may be redacted.
    """
    import duckdb

    pattern = str(layout.run_table_dir("experiments", run_id) / "*.parquet")
    try:
        rows = (
            duckdb.connect()
            .execute(
                f"select experiment, backend, endpoint, region from read_parquet('{_quoted(pattern)}') "
                "where backend in ('sagemaker', 'bedrock') order by experiment"
            )
            .fetchall()
        )
    except duckdb.IOException:
        rows = []
    specs = {exp.name: exp.spec for exp in loaded.experiments}
    found = []
    for experiment, backend, endpoint, region in rows:
        endpoint = (addresses or {}).get(experiment) or endpoint
        if experiment not in windows or not endpoint:
            continue
        if backend == "sagemaker":
            spec = specs.get(experiment)
            variant = (spec.production_variant_name if spec else None) or "AllTraffic"
            dimensions: tuple[tuple[str, str], ...] = (("EndpointName", endpoint), ("VariantName", variant))
        else:
            dimensions = (("ModelId", endpoint),)
        start, end = windows[experiment]
        found.append(Source(experiment, backend, region, dimensions, start, end))
    return found


def run_windows(layout: ResultsLayout, run_id: str) -> dict[str, tuple[datetime, datetime]]:
    """Each experiment's window in a run, from its request rows: first start to last end (every session)."""
    import duckdb

    pattern = str(layout.raw / "requests" / "*" / f"run_id={partition_value(run_id)}" / "*.parquet")
    try:
        rows = (
            duckdb.connect()
            .execute(
                "select experiment, epoch_us(min(started_at)), epoch_us(max(ended_at)) "
                f"from read_parquet('{_quoted(pattern)}', hive_partitioning = false, union_by_name = true) "
                "group by experiment"
            )
            .fetchall()
        )
    except duckdb.IOException:
        rows = []
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {
        name: (epoch + timedelta(microseconds=first), epoch + timedelta(microseconds=last))
        for name, first, last in rows
        if first is not None and last is not None
    }


def fetch_and_write(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    run_id: str,
    windows: dict[str, tuple[datetime, datetime]],
    *,
    fetched_at: datetime | None = None,
    addresses: dict[str, str] | None = None,
) -> Outcome:
    """Fetch the run's CloudWatch metrics for ``windows`` and write them as one part file."""
    from fmb.config.schema import Telemetry

    settings = loaded.config.telemetry or Telemetry()
    found = sources(loaded, layout, run_id, windows, addresses)
    if not found:
        return Outcome(run_id=run_id)
    rows, outcome = fetch(loaded, found, run_id, int(settings.cloudwatch_period_s), fetched_at=fetched_at)
    if rows:
        parts = SampleParts(
            layout.endpoint_metrics_dir(run_id), ENDPOINT_METRICS, note=lambda text: outcome.notes.append(text)
        )
        parts.add(rows)
        parts.flush()
        if parts.rows_written != len(rows):
            outcome.datapoints = {}
    return outcome


def after_collect(
    loaded: LoadedConfig,
    layout: ResultsLayout,
    run_id: str,
    windows: dict[str, tuple[datetime, datetime]],
    *,
    addresses: dict[str, str] | None = None,
    whole_run: bool = False,
    console: Console | None = None,
    quiet: bool = False,
) -> Outcome | None:
    """The fetch at the end of `fmb collect`, with a note on the console (unless ``quiet``); never raises.

    ``whole_run`` (a resumed run): the windows span every session of the run, from its request
    rows, since this fetch supersedes the earlier ones.
    """
    from fmb.config.schema import Telemetry

    settings = loaded.config.telemetry or Telemetry()
    backends = {exp.name: exp.backend for exp in loaded.experiments}
    windows = {name: w for name, w in windows.items() if backends.get(name) in METRICS}
    if not settings.cloudwatch or not windows:
        return None

    def note(text: str) -> None:
        if not quiet:
            from rich import get_console

            (console or get_console()).print(f"cloudwatch: {text}", markup=False, highlight=False, soft_wrap=True)

    if whole_run:
        earlier = run_windows(layout, run_id)
        windows = {
            name: (min(start, earlier.get(name, (start, end))[0]), max(end, earlier.get(name, (start, end))[1]))
            for name, (start, end) in windows.items()
        }
    try:
        outcome = fetch_and_write(loaded, layout, run_id, windows, addresses=addresses)
    except KeyboardInterrupt:
        note(f"fetch interrupted; `fmb cloudwatch CONFIG --run-id {run_id}` fetches the metrics later")
        return None
    except (OSError, FmbError) as exc:
        note(f"not fetched ({exc})")
        return None
    except Exception as exc:  # the run is recorded already: a fetch that goes wrong is only a note
        note(f"not fetched ({type(exc).__name__}: {exc})")
        return None
    for text in outcome.notes:
        note(text)
    if outcome.datapoints:
        counts = ", ".join(f"{n} for {name}" for name, n in outcome.datapoints.items())
        note(f"fetched {outcome.total} datapoint(s) ({counts}); {DELAY_HINT.format(run_id=run_id)}.")
    return outcome


def refetch(loaded: LoadedConfig, layout: ResultsLayout, run_id: str | None = None) -> Outcome:
    """`fmb cloudwatch`: fetch a finished run's metrics again (default: the benchmark's latest run).

    The windows come from the run's request rows; the new part file supersedes earlier fetches.
    """
    run_id = run_id or _latest_run(layout, loaded.name)
    _check_run(layout, run_id, loaded.name)
    backends = {exp.name: exp.backend for exp in loaded.experiments}
    windows = {name: w for name, w in run_windows(layout, run_id).items() if backends.get(name) in METRICS}
    if not windows:
        raise FmbError(
            f"run {run_id} has no request rows of a SageMaker or Bedrock experiment: there is nothing to fetch.",
            hint="CloudWatch metrics are fetched for experiments with inference_script sagemaker_predictor.py "
            "or bedrock_predictor.py.",
        )
    outcome = fetch_and_write(loaded, layout, run_id, windows)
    outcome.run_id = run_id
    return outcome


def _runs(layout: ResultsLayout, where: str, params: list[Any]) -> tuple[Any, ...] | None:
    import duckdb

    pattern = str(layout.raw / "runs" / "*" / "*.parquet")
    try:
        return (
            duckdb.connect()
            .execute(
                f"select run_id, benchmark, status from read_parquet('{_quoted(pattern)}', union_by_name = true) "
                f"where {where} order by started_at desc limit 1",
                params,
            )
            .fetchone()
        )
    except duckdb.Error:
        return None


def _latest_run(layout: ResultsLayout, benchmark: str) -> str:
    found = _runs(layout, "benchmark = ? and status <> 'running'", [benchmark])
    if not found:
        raise FmbError(
            f"no finished run of benchmark {benchmark!r} in {layout.root}.",
            hint="Collect one first (fmb collect CONFIG), or name the results folder with --results.",
        )
    return str(found[0])


def _check_run(layout: ResultsLayout, run_id: str, benchmark: str) -> None:
    found = _runs(layout, "run_id = ?", [run_id])
    if not found:
        raise FmbError(f"run {run_id} is not in {layout.root}.", hint="fmb report lists the runs it knows.")
    if found[1] != benchmark:
        raise FmbError(
            f"run {run_id} is a run of benchmark {found[1]!r}, not of this config's {benchmark!r}.",
            hint="Fetch its metrics with the config it was collected with.",
        )
    if found[2] == "running":
        raise FmbError(f"run {run_id} is still running; `fmb collect` fetches its metrics when it ends.")


def _quoted(text: str) -> str:
    return text.replace("'", "''")

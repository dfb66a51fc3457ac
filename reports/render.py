"""`fmb report`: marts -> charts (PNG) and report.md, beside each other in one folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure

from fmb.paths import slug
from fmb.reports import accuracy_charts, charts, load_charts, telemetry_charts
from fmb.reports.fmbench_files import FMBenchFiles, write_fmbench_files
from fmb.reports.format import FILTERS, fence_for
from fmb.reports.loaders import ReportData, connect, load


@dataclass
class Chart:
    title: str
    file: str | None
    missing: str | None = None


@dataclass
class Report:
    path: Path
    run_id: str
    charts: list[Chart]
    fmbench_files: FMBenchFiles | None = None


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("fmb.reports", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    return env


def _focus(rows: list[dict], candidates: list[dict]) -> list[dict]:
    """The rows of the dataset of interest (its cells), or all rows when it has none."""
    keys = {(c["experiment"], c["payload_file"], c["concurrency"]) for c in candidates}
    mine = [r for r in rows if (r["experiment"], r["payload_file"], r["concurrency"]) in keys]
    return mine or rows


ChartMaker = Callable[[], Figure | charts.NotDrawn | None]


def draw_charts(data: ReportData) -> list[tuple[str, str, ChartMaker, str]]:
    """(title, file name, figure maker, why it may be missing) for every chart of the report.

    A maker returns None when it has nothing to draw (the report gives the reason listed
    here), or :class:`~fmb.reports.charts.NotDrawn` with its own reason.
    """
    run = data.run
    instance_types = {e["experiment"]: e["instance_type"] for e in data.experiment_runs}
    focus_cells = _focus(data.cells, data.candidates)
    payload_files = sorted({c["payload_file"] for c in data.cells})
    return [
        (
            "Price vs performance",
            "price_performance.png",
            lambda: charts.price_performance(
                data.candidates, run["latency_budget_s"], run["cost_per_10k_txn_budget_usd"]
            ),
            "no cell of the dataset of interest has both a p95 latency and a price",
        ),
        (
            "Latency vs prompt size",
            "latency_vs_prompt_size.png",
            lambda: charts.latency_vs_prompt_size(data.prompt_size, instance_types, payload_files),
            "no successful request",
        ),
        (
            "TTFT and throughput vs concurrency",
            "concurrency.png",
            lambda: charts.concurrency_effects(focus_cells),
            "no cell",
        ),
        ("Error rate vs concurrency", "error_rates.png", lambda: charts.error_rates(focus_cells), "no cell"),
        (
            "Per-request latency distribution",
            "latency_distribution.png",
            lambda: charts.latency_distribution(_focus(data.histograms, data.candidates), focus_cells),
            "no successful request",
        ),
    ]


def draw_accuracy_charts(data: ReportData) -> list[tuple[str, str, ChartMaker, str]]:
    """The charts of the accuracy section, as :func:`draw_charts` gives them; none without an evaluation."""
    accuracy = data.accuracy
    if accuracy is None:
        return []
    budget = data.run["accuracy_budget"]
    return [
        (
            "Accuracy per payload file",
            "accuracy_by_payload_file.png",
            lambda: accuracy_charts.accuracy_by_payload_file(accuracy.by_payload_file, budget),
            "no response has a correct or incorrect majority vote",
        ),
        (
            "Overall accuracy per experiment",
            "accuracy_by_experiment.png",
            lambda: accuracy_charts.accuracy_by_experiment(accuracy.by_experiment, budget),
            "no response has a correct or incorrect majority vote",
        ),
    ]


def draw_telemetry_charts(data: ReportData) -> list[tuple[str, str, ChartMaker, str]]:
    """A timeline per experiment of the run, when anything was sampled beside its requests."""
    telemetry = data.telemetry
    if telemetry is None or not telemetry.timelines:
        return []
    timelines = telemetry.timelines

    def maker(experiment: str) -> ChartMaker:
        return lambda: telemetry_charts.run_timeline(timelines, experiment)

    experiments = sorted({r["experiment"] for r in timelines})
    return [
        (f"Timeline: {e}", f"timeline_{slug(e)}.png", maker(e), "no request of the experiment") for e in experiments
    ]


def draw_load_charts(data: ReportData) -> list[tuple[str, str, ChartMaker, str]]:
    """The chart of the load levels section; none without an open-loop or trace cell."""
    levels = data.load_levels
    if not levels:
        return []
    return [
        (
            "Latency and throughput vs offered load",
            "load_levels.png",
            lambda: load_charts.latency_vs_load(levels),
            "no cell has an offered rate",
        )
    ]


def draw_curve_charts(data: ReportData) -> list[tuple[str, str, ChartMaker, str]]:
    """The throughput-latency curves with their knees; none without a curve of two levels or more."""
    curves = data.curves
    if not curves:
        return []
    return [
        (
            "Throughput vs latency, knee marked",
            "knees.png",
            lambda: load_charts.throughput_latency_curves(curves),
            "no level has both a throughput and a p99 latency",
        )
    ]


def _make(out: Path, makers: list[tuple[str, str, ChartMaker, str]]) -> list[Chart]:
    made: list[Chart] = []
    for title, file, make, missing in makers:
        figure = make()
        target = out / file
        if not isinstance(figure, Figure):
            target.unlink(missing_ok=True)  # never leave a chart of an older report beside this one
            made.append(Chart(title, None, figure.reason if isinstance(figure, charts.NotDrawn) else missing))
            continue
        figure.savefig(target, dpi=110)
        made.append(Chart(title, file))
    return made


def render_report(
    warehouse: Path,
    out: Path | None,
    run_id: str | None = None,
    results: Path | None = None,
    benchmark: str | None = None,
) -> Report:
    """Render the report of ``run_id`` (default: the latest run, of ``benchmark`` if given)."""
    data = load(warehouse, run_id, benchmark)
    if out is None:
        out = (results or warehouse.parent) / "reports" / slug(data.run["benchmark"])
    out.mkdir(parents=True, exist_ok=True)
    made = _make(out, draw_charts(data))
    accuracy_made = _make(out, draw_accuracy_charts(data))
    if data.accuracy is None:  # never leave the accuracy charts of an older report beside this one
        for name in ("accuracy_by_payload_file.png", "accuracy_by_experiment.png"):
            (out / name).unlink(missing_ok=True)
    telemetry_made = _make(out, draw_telemetry_charts(data))
    load_made = _make(out, draw_load_charts(data))
    if not load_made:
        (out / "load_levels.png").unlink(missing_ok=True)
    curve_made = _make(out, draw_curve_charts(data))
    if not curve_made:
        (out / "knees.png").unlink(missing_ok=True)
    for stale in set(out.glob("timeline_*.png")) - {out / c.file for c in telemetry_made if c.file}:
        stale.unlink()
    config_yaml = yaml.safe_dump(json.loads(data.run["config_json"] or "{}"), sort_keys=False, allow_unicode=True)
    text = (
        _environment()
        .get_template("report.md.j2")
        .render(
            data=data,
            charts=made,
            accuracy_charts=accuracy_made,
            telemetry_charts=telemetry_made,
            load_charts=load_made,
            curve_charts=curve_made,
            config_yaml=config_yaml,
            config_fence=fence_for(config_yaml),
        )
    )
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    con = connect(warehouse)
    try:
        fmbench = write_fmbench_files(con, data.run, data.config, out, results or warehouse.parent)
    finally:
        con.close()
    return Report(path, data.run["run_id"], made + accuracy_made + telemetry_made + load_made + curve_made, fmbench)

"""The chart of the load levels section: what the server did as the offered load rose.

Drawn from the ``cells`` mart rows of open-loop and trace cells; it computes nothing.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from fmb.reports.charts import MARKERS, PALETTE, _series, _span, _title

Row = dict[str, Any]


def latency_vs_load(cells: list[Row]) -> Figure | None:
    """Achieved against offered rate, and p50/p99 latency from the schedule, a line per experiment and payload file.

    A cell whose client fell behind its schedule is drawn hollow: the load it offered was lower than planned.
    """
    rows = [r for r in cells if r["request_rate_per_s"] is not None]
    if not rows:
        return None
    several = len({r["payload_file"] for r in rows}) > 1
    lines = _series(
        rows, lambda r: f"{r['config_experiment']} | {r['payload_file']}" if several else r["config_experiment"]
    )
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    rate_ax, latency_ax = fig.subplots(1, 2)
    offered = [r["request_rate_per_s"] for r in rows]
    rate_ax.plot(_span(offered), _span(offered), color="#999999", linestyle=":", label="achieved = offered")
    for i, (label, line) in enumerate(sorted(lines.items())):
        line = sorted(line, key=lambda r: r["request_rate_per_s"])
        color, marker = PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]
        x = [r["request_rate_per_s"] for r in line]
        rate_ax.plot(x, [r["requests_per_s"] for r in line], color=color, marker=marker, label=label)
        for key, style in (("e2e_latency_from_schedule_p50_ms", "-"), ("e2e_latency_from_schedule_p99_ms", "--")):
            points = [(r["request_rate_per_s"], r[key] / 1000) for r in line if r[key] is not None]
            if points:
                latency_ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    color=color,
                    marker=marker,
                    linestyle=style,
                    label=f"{label} ({key.split('_')[-2]})",
                )
        behind = [r for r in line if r["is_behind_schedule"]]
        for ax, key in ((rate_ax, "requests_per_s"), (latency_ax, "e2e_latency_from_schedule_p99_ms")):
            points = [(r["request_rate_per_s"], r[key]) for r in behind if r[key] is not None]
            scale = 1000 if ax is latency_ax else 1
            ax.scatter(
                [p[0] for p in points],
                [p[1] / scale for p in points],
                s=120,
                facecolors="none",
                edgecolors="#d62728",
                zorder=5,
                label="client behind its schedule" if points and ax is rate_ax else None,
            )
    rate_ax.set_title("Throughput")
    rate_ax.set_xlabel("offered requests per second")
    rate_ax.set_ylabel("successful requests per second")
    latency_ax.set_title("Latency from the schedule (p50 solid, p99 dashed)")
    latency_ax.set_xlabel("offered requests per second")
    latency_ax.set_ylabel("seconds")
    for ax in (rate_ax, latency_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(_title("Latency and throughput vs offered load", "open loop and trace replay", fig))
    return fig


def throughput_latency_curves(curves: list[Row]) -> Figure | None:
    """Each curve's p99 latency against its throughput, level by level; the knee is a star.

    Open-loop levels use the latency from the schedule, closed-loop ones the latency from sending.
    """
    several = len({r["payload_file"] for r in curves}) > 1
    lines = _series(
        curves, lambda r: f"{r['config_experiment']} | {r['payload_file']}" if several else r["config_experiment"]
    )
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    drawn = False
    for i, (label, line) in enumerate(sorted(lines.items())):
        points = []
        for r in sorted(line, key=lambda r: r["level_rank"]):
            latency = r["e2e_latency_from_schedule_p99_ms"] or r["e2e_latency_p99_ms"]
            if r["requests_per_s"] is not None and latency is not None:
                points.append((r["requests_per_s"], latency / 1000, r))
        if not points:
            continue
        drawn = True
        color, marker = PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]
        ax.plot([p[0] for p in points], [p[1] for p in points], color=color, marker=marker, label=label)
        for x, y, r in points:
            unit = "c=" if r["load_unit"] == "concurrency" else ""
            suffix = "" if r["load_unit"] == "concurrency" else "/s"
            ax.annotate(f"{unit}{r['offered_load']:.3g}{suffix}", (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize="x-small", color=color)  # fmt: skip
            if r["is_knee"]:
                ax.scatter([x], [y], marker="*", s=260, color=color, edgecolors="black", zorder=5)
    if not drawn:
        return None
    ax.scatter([], [], marker="*", s=160, color="#cccccc", edgecolors="black", label="knee")
    ax.set_xlabel("successful requests per second")
    ax.set_ylabel("p99 latency (s; open loop: from the schedule)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(_title("Throughput vs latency as the load rises", "knee: highest level worth running at", fig))
    return fig

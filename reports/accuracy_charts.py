"""Charts of the accuracy step (`fmb evaluate`), drawn from the accuracy marts. They compute nothing.

Accuracy is the marts' majority-vote accuracy (a fraction), shown in percent; a bar without
an accuracy figure (no response with a correct or incorrect majority vote) is left out, and
each bar is labelled with the responses its figure counts.
"""

from __future__ import annotations

import re
from typing import Any

from matplotlib.figure import Figure

from fmb.reports.charts import PALETTE, Row, _title


def _natural(name: str) -> list[Any]:
    """A payload file's name as a sort key that puts payload_en_500-1000 before payload_en_1000-2000."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _budget_line(ax: Any, accuracy_budget: float | None) -> None:
    if accuracy_budget is not None:
        ax.axhline(
            100 * accuracy_budget,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"accuracy budget {100 * accuracy_budget:g}%",
        )


def _decided(row: Row) -> int:
    """The responses an accuracy figure counts: those with a correct or incorrect majority vote."""
    return int(row["count_correct_responses"]) + int(row["count_incorrect_responses"])


def accuracy_by_payload_file(rows: list[Row], accuracy_budget: float | None = None) -> Figure | None:
    """Majority-vote accuracy per payload file (FMBench's accuracy per payload), a bar per experiment."""
    rows = [r for r in rows if r["accuracy"] is not None]
    if not rows:
        return None
    files = sorted({r["payload_file"] for r in rows}, key=_natural)
    experiments = sorted({r["experiment"] for r in rows})
    fig = Figure(figsize=(max(7.0, 1.2 * len(files) * max(1, len(experiments)) + 3), 4.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(experiments)
    for i, experiment in enumerate(experiments):
        mine = {r["payload_file"]: r for r in rows if r["experiment"] == experiment}
        positions = [j + (i - (len(experiments) - 1) / 2) * width for j, f in enumerate(files) if f in mine]
        shown = [mine[f] for f in files if f in mine]
        bars = ax.bar(
            positions,
            [100 * r["accuracy"] for r in shown],
            width=width,
            color=PALETTE[i % len(PALETTE)],
            label=experiment,
            gid=f"experiment={experiment}",
        )
        ax.bar_label(bars, labels=[f"n={_decided(r)}" for r in shown], fontsize="x-small", padding=2)
    _budget_line(ax, accuracy_budget)
    ax.set_xticks(range(len(files)), labels=files, rotation=20, ha="right", fontsize="small")
    ax.set_ylim(0, 110)
    ax.set_ylabel("majority-vote accuracy (%)")
    ax.set_xlabel("payload file")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(_title("Accuracy per payload file", "n: responses with a correct or incorrect majority vote", fig))
    return fig


def accuracy_by_experiment(rows: list[Row], accuracy_budget: float | None = None) -> Figure | None:
    """Overall majority-vote accuracy of each experiment, every payload file and concurrency together."""
    rows = [r for r in rows if r["accuracy"] is not None]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r["experiment"])
    fig = Figure(figsize=(max(6.0, 1.3 * len(rows) + 3), 4.5), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(
        range(len(rows)),
        [100 * r["accuracy"] for r in rows],
        color=[PALETTE[i % len(PALETTE)] for i in range(len(rows))],
        gid="accuracy",
    )
    ax.bar_label(
        bars,
        labels=[f"{100 * r['accuracy']:.1f}% of {_decided(r)}" for r in rows],
        fontsize="x-small",
        padding=2,
    )
    _budget_line(ax, accuracy_budget)
    ax.set_xticks(range(len(rows)), labels=[r["experiment"] for r in rows], rotation=20, ha="right")
    ax.set_ylim(0, 110)
    ax.set_ylabel("majority-vote accuracy (%)")
    ax.grid(True, axis="y", alpha=0.3)
    if accuracy_budget is not None:
        ax.legend(fontsize="small")
    ax.set_title(_title("Overall accuracy per experiment", "majority vote of the judge panel", fig))
    return fig

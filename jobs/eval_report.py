"""The evaluation report: one Markdown page and a plot, written beside the Delta tables.

It shows every model and baseline against held-out gold grades (and the simulator's hidden
truth when present), and the student's paired comparisons with their 95% intervals.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from jobs.metrics import OVERALL

_COLUMNS = {
    "ndcg_at_10": "NDCG@10",
    "poor_match_rate_at_10": "poor-match@10",
    "auc_grade_ge_3": "AUC (grade>=3)",
    "weighted_kappa": "weighted kappa",
    "kendall_tau_to_teacher": "tau to teacher",
    "kl_to_teacher": "KL to teacher",
}
_ORDER = ["student", "teacher", "production", "prefilter", "random"]


def write_report(
    table: pd.DataFrame,
    compared: pd.DataFrame,
    report_dir: Path,
    run_date: dt.date,
    versions: dict[str, str],
) -> Path:
    """Write ``report.md`` and ``ndcg.png`` under ``report_dir``; returns the Markdown path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# policyrank evaluation {run_date}", ""]
    lines += ["Models: " + ", ".join(f"{m} `{v}`" for m, v in versions.items()), ""]
    overall = table[table.slice == OVERALL]
    for source, part in overall.groupby("label_source", sort=False):
        title = "held-out gold grades" if source == "gold" else "hidden true grades (simulator)"
        lines += [f"## Against {title}", ""]
        lines += _markdown_table(part)
        lines.append("")
    lines += ["## Student vs baselines (NDCG@10, paired member bootstrap, 95% interval)", ""]
    lines += ["| labels | baseline | statistic | student | baseline | estimate | 95% interval |"]
    lines += ["| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in compared.itertuples():
        lines.append(
            f"| {r.label_source} | {r.baseline} | {r.statistic} | {r.student_value:.3f} | "
            f"{r.baseline_value:.3f} | {r.estimate:+.3f} | [{r.ci_low:+.3f}, {r.ci_high:+.3f}] |"
        )
    lines += ["", "## Per seniority band (gold)", ""]
    bands = table[(table.label_source == "gold") & (table.slice != OVERALL)]
    pivot = bands.pivot_table(index="slice", columns="model", values="ndcg_at_10")
    members = bands[bands.model == "student"].set_index("slice").members
    lines += ["| band | members | " + " | ".join(c for c in _ORDER if c in pivot) + " |"]
    lines += ["| --- | ---: |" + " ---: |" * sum(c in pivot for c in _ORDER)]
    for band, row in pivot.iterrows():
        cells = [_fmt(row[c]) for c in _ORDER if c in pivot]
        lines.append(f"| {band} | {int(members.get(band, 0))} | " + " | ".join(cells) + " |")
    _plot(overall, report_dir / "ndcg.png")
    lines += ["", "![NDCG@10 per model](ndcg.png)", ""]
    path = report_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _markdown_table(part: pd.DataFrame) -> list[str]:
    lines = ["| model | members | " + " | ".join(_COLUMNS.values()) + " |"]
    lines.append("| --- | ---: |" + " ---: |" * len(_COLUMNS))
    for name in [m for m in _ORDER if m in set(part.model)]:
        row = part[part.model == name].iloc[0]
        cells = [_fmt(row[c]) for c in _COLUMNS]
        lines.append(f"| {name} | {int(row.members)} | " + " | ".join(cells) + " |")
    return lines


def _fmt(value) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3f}"


def _plot(overall: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = overall.pivot_table(index="model", columns="label_source", values="ndcg_at_10")
    pivot = pivot.reindex([m for m in _ORDER if m in pivot.index])
    pivot = pivot.rename(columns={"gold": "held-out gold", "truth": "hidden truth (simulator)"})
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    pivot.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("NDCG@10")
    ax.set_ylim(0, 1)
    ax.set_title("Held-out members' candidate lists")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

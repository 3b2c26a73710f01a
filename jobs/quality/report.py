"""The evaluation report, written beside the Delta tables: ``report.html``, one self-contained
page (its plot embedded), and the same as ``report.md`` + ``ndcg.png``.

It shows every model and baseline (the rules baseline, the prefilter, random) against held-out
gold grades (and the simulator's hidden truth when present), each NDCG@10 with its member
bootstrap interval, and the student's paired comparisons with their 95% intervals; then the
judge's calibration (kappa per slice, the confusion matrix, a reliability plot) and the history
of every evaluated date with the gate's decision.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.quality.metrics import OVERALL

_COLUMNS = {
    "ndcg_at_10": "NDCG@10",
    "poor_match_rate_at_10": "poor-match@10",
    "auc_grade_ge_3": "AUC (grade>=3)",
    "weighted_kappa": "weighted kappa",
    "kendall_tau_to_teacher": "tau to teacher",
    "kl_to_teacher": "KL to teacher",
}
_ORDER = ["student", "teacher", "production", "rules", "prefilter", "random"]


def write_report(
    table: pd.DataFrame,
    compared: pd.DataFrame,
    report_dir: Path,
    run_date: dt.date,
    versions: dict[str, str],
    *,
    calibration: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    decisions: dict[str, dict] | None = None,
) -> Path:
    """Write ``report.md``, its plots (``*.png``) and ``report.html`` (the plots embedded) under
    ``report_dir``; returns the HTML page's path.

    ``calibration``: the judge's ``judge_calibration`` rows of one date (a section with kappa per
    slice, the confusion matrix as a heat map and a reliability plot). ``history``: the gold
    overall ``eval_metrics`` rows of every evaluated date, with ``decisions`` (the registry's
    newest event per ``run_date``) for the gate's column."""
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
    if calibration is not None and not calibration.empty:
        lines += calibration_section(calibration, report_dir)
    if history is not None and not history.empty:
        lines += history_section(history, decisions or {})
    (report_dir / "report.md").write_text("\n".join(lines))
    images = {
        png.name: "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
        for png in report_dir.glob("*.png")
    }
    path = report_dir / "report.html"
    path.write_text(markdown_to_html(lines, images))
    return path


def calibration_section(rows: pd.DataFrame, report_dir: Path) -> list[str]:
    """The judge against held-out gold: a table per slice, the overall confusion matrix as a
    heat map and a reliability plot (mean gold grade per judged grade)."""
    first = rows.iloc[0]
    lines = [f"## The judge against held-out gold ({first.run_date})", ""]
    lines += [f"Teacher `{first.teacher_model_id}`, policy `{first.policy_version}`.", ""]
    lines += ["| slice | pairs | weighted kappa | exact agreement | Spearman |"]
    lines += ["| --- | ---: | ---: | ---: | ---: |"]
    for r in rows[~rows.slice.str.startswith("occupation:")].itertuples():
        rho = getattr(r, "spearman", float("nan"))
        lines.append(
            f"| {r.slice} | {int(r.pairs):,} | {_fmt(r.weighted_kappa)} | "
            f"{_fmt(r.exact_agreement)} | {_fmt(rho)} |"
        )
    confusion = np.array(json.loads(rows.set_index("slice").loc[OVERALL, "confusion"]))
    _plot_calibration(confusion, report_dir)
    lines += ["", "![confusion matrix, held-out gold](confusion.png)"]
    lines += ["", "![reliability: mean gold grade per judged grade](reliability.png)", ""]
    return lines


def history_section(history: pd.DataFrame, decisions: dict[str, dict]) -> list[str]:
    """Every evaluated date: the student and production model against the rules baseline and
    the prefilter (gold NDCG@10 with intervals), and what the gate decided."""
    lines = ["## History (held-out gold, NDCG@10 with 95% intervals)", ""]
    lines += ["| date | student | production | rules | prefilter | gate |"]
    lines += ["| --- | --- | --- | --- | --- | --- |"]
    for day, part in history.sort_values("run_date").groupby("run_date", sort=True):
        by_model = part.drop_duplicates("model", keep="last").set_index("model")
        row = [str(day), _ndcg_cell(by_model, "student", True),
               _ndcg_cell(by_model, "production", True), _ndcg_cell(by_model, "rules"),
               _ndcg_cell(by_model, "prefilter"), _decision(decisions.get(str(day)))]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _ndcg_cell(by_model: pd.DataFrame, model: str, named: bool = False) -> str:
    if model not in by_model.index:
        return "-"
    r = by_model.loc[model]
    low, high = r.get("ndcg_at_10_ci_low"), r.get("ndcg_at_10_ci_high")
    interval = "" if pd.isna(low) else f" [{low:.3f}, {high:.3f}]"
    name = f"`{r.model_version}` " if named else ""
    return f"{name}{_fmt(r.ndcg_at_10)}{interval}"


def _decision(event: dict | None) -> str:
    if event is None:
        return "not decided"
    if event.get("event") == "promoted":
        return "promoted"
    failed = [c["check"] for c in event.get("checks", []) if not c.get("passed")]
    return "refused: " + "; ".join(failed) if failed else "refused"


def _plot_calibration(confusion: np.ndarray, report_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grades = np.arange(confusion.shape[0])
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for g, j in np.ndindex(confusion.shape):
        ax.text(j, g, str(confusion[g, j]), ha="center", va="center",
                color="white" if shares[g, j] > 0.5 else "black", fontsize=8)  # fmt: skip
    ax.set_xlabel("judge grade")
    ax.set_ylabel("gold grade")
    ax.set_xticks(grades)
    ax.set_yticks(grades)
    ax.set_title("Judge vs gold (row shares)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(report_dir / "confusion.png", dpi=110)
    plt.close(fig)

    judged = confusion.sum(axis=0)
    mean_gold = (confusion * grades[:, None]).sum(axis=0) / np.maximum(judged, 1)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.plot([0, grades[-1]], [0, grades[-1]], color="#999", linestyle="--", label="perfect")
    seen = judged > 0
    ax.plot(grades[seen], mean_gold[seen], marker="o", label="judge")
    for g in grades[seen]:
        ax.annotate(f"n={judged[g]}", (g, mean_gold[g]), textcoords="offset points",
                    xytext=(4, -10), fontsize=7)  # fmt: skip
    ax.set_xlabel("judge grade")
    ax.set_ylabel("mean gold grade")
    ax.set_title("Reliability")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(report_dir / "reliability.png", dpi=110)
    plt.close(fig)


def markdown_to_html(lines: list[str], images: dict[str, str]) -> str:
    """The report's own Markdown (headings, pipe tables, images, text) as one HTML page; image
    sources are replaced through ``images`` (data URIs), so the page stands alone.

    >>> page = markdown_to_html(["# T", "| a | b |", "| --- | ---: |", "| 1 | `x` |"], {})
    >>> print(page[page.index("<h1>") : page.index("</body>")].strip())
    <h1>T</h1>
    <table>
    <tr><th>a</th><th>b</th></tr>
    <tr><td>1</td><td><code>x</code></td></tr>
    </table>
    """
    body, table = [], []

    def flush() -> None:
        if table:
            head, *rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-: ")]
            body.append("<table>")
            body.append(_row(head, "th"))
            body.extend(_row(r, "td") for r in rows)
            body.append("</table>")
            table.clear()

    for line in lines:
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif image := re.fullmatch(r"!\[(.*)\]\((.*)\)", line):
            src = images.get(image.group(2), image.group(2))
            body.append(f'<p><img alt="{html.escape(image.group(1))}" src="{src}"></p>')
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    flush()
    title = html.escape(lines[0].lstrip("# ")) if lines else "policyrank evaluation"
    return "\n".join(
        [
            "<!doctype html>",
            f'<html><head><meta charset="utf-8"><title>{title}</title><style>{_CSS}</style>'
            "</head><body>",
            *body,
            "</body></html>",
        ]
    )


_CSS = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
)


def _row(line: str, cell: str) -> str:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return "<tr>" + "".join(f"<{cell}>{_inline(c)}</{cell}>" for c in cells) + "</tr>"


def _inline(text: str) -> str:
    """Escape, then ``code`` spans."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def _markdown_table(part: pd.DataFrame) -> list[str]:
    lines = ["| model | members | " + " | ".join(_COLUMNS.values()) + " | NDCG@10 95% interval |"]
    lines.append("| --- | ---: |" + " ---: |" * len(_COLUMNS) + " --- |")
    for name in [m for m in _ORDER if m in set(part.model)]:
        row = part[part.model == name].iloc[0]
        cells = [_fmt(row[c]) for c in _COLUMNS]
        low, high = row.get("ndcg_at_10_ci_low"), row.get("ndcg_at_10_ci_high")
        interval = "n/a" if pd.isna(low) else f"[{low:.3f}, {high:.3f}]"
        lines.append(f"| {name} | {int(row.members)} | " + " | ".join(cells) + f" | {interval} |")
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

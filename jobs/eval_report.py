"""The eval report: a small Markdown file with tables and PNG plots comparing models.

Input per model name (e.g. ``untrained``, ``teacher``, ``student``): the :func:`jobs.metrics.
evaluate_by` table (one row per stratum plus ``overall``) and the scored frame it came from (for
the NDCG bootstrap CI, the score histogram and the reliability diagram). Plots use matplotlib's
object API (``Figure`` on the Agg canvas), so no global backend or pyplot state is touched.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from jobs import metrics

SCORES_PNG = "scores.png"
CALIBRATION_PNG = "calibration.png"
NDCG_PNG = "ndcg_by_stratum.png"

_LABELS = {
    "ndcg_at_{k}": "NDCG@{k}",
    "poor_match_rate_at_{k}": "poor@{k}",
    "auc_grade_ge_3": "AUC (grade>=3)",
    "weighted_kappa": "kappa vs gold",
    "kendall_tau_to_teacher": "tau to teacher",
    "ece": "ECE p(grade>=3)",
}


def write_report(
    metrics_by_model: dict[str, pd.DataFrame],
    scored: dict[str, pd.DataFrame],
    out_dir: Path,
    title: str,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> Path:
    """Write ``out_dir/report.md`` and its PNGs (``scores.png``, ``ndcg_by_stratum.png``, and
    ``calibration.png`` when some scored frame has a ``p_ge_3`` column); return the report path.

    The summary table has one row per model with the ``overall`` metrics; NDCG@k carries a 95%
    member-bootstrap CI (:func:`jobs.metrics.bootstrap_ci`) when the model has a scored frame.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not metrics_by_model:
        raise ValueError("write_report: no models")
    k = _k_of(next(iter(metrics_by_model.values())))
    names = metrics.metric_names(k)
    ndcg = names[0]

    lines = [f"# {title}", ""]
    lines += ["## Summary (all members)", ""]
    header = ["model", "members", "pairs", *(_label(n, k) for n in names)]
    lines += _table_header(header)
    for model, table in metrics_by_model.items():
        row = _overall(table)
        cells = [model, str(int(row["members"])), str(int(row["pairs"]))]
        for name in names:
            cell = _fmt(row[name])
            if name == ndcg and model in scored:
                low, high = metrics.bootstrap_ci(
                    scored[model], lambda f: metrics.ndcg_at_k(f, k), n_boot=n_boot, seed=seed
                )
                cell += f" [{_fmt(low)}, {_fmt(high)}]"
            cells.append(cell)
        lines.append(_row(cells))
    lines += [
        "",
        f"NDCG@{k} in brackets: 95% bootstrap CI over members ({n_boot} resamples). "
        "n/a: the metric's input column (gold grade, teacher score, p(grade>=3)) is absent.",
        "",
    ]

    by_stratum = _ndcg_by_stratum(metrics_by_model, ndcg)
    lines += [f"## NDCG@{k} by stratum", ""]
    lines += _table_header(["stratum", *by_stratum.columns])
    for stratum, vals in by_stratum.iterrows():
        lines.append(_row([str(stratum), *(_fmt(v) for v in vals)]))
    lines += ["", f"![NDCG@{k} by stratum]({NDCG_PNG})", ""]
    _plot_ndcg(by_stratum.drop(index=metrics.OVERALL, errors="ignore"), k, out_dir / NDCG_PNG)

    lines += ["## Score distribution", "", f"![score distribution]({SCORES_PNG})", ""]
    _plot_scores(scored, out_dir / SCORES_PNG)

    lines += ["## Calibration of p(grade>=3)", ""]
    with_prob = {m: f for m, f in scored.items() if metrics.PROB_COL in f.columns}
    if with_prob:
        _plot_calibration(with_prob, out_dir / CALIBRATION_PNG)
        lines += [f"![reliability diagram]({CALIBRATION_PNG})", ""]
    else:
        lines += [f"No model has a `{metrics.PROB_COL}` column.", ""]

    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------- tables


def _k_of(table: pd.DataFrame) -> int:
    col = next(c for c in table.columns if c.startswith("ndcg_at_"))
    return int(col.removeprefix("ndcg_at_"))


def _label(name: str, k: int) -> str:
    for pattern, label in _LABELS.items():
        if pattern.format(k=k) == name:
            return label.format(k=k)
    return name


def _overall(table: pd.DataFrame) -> pd.Series:
    rows = table[table["slice"] == metrics.OVERALL]
    if rows.empty:
        raise ValueError(f"metrics table has no '{metrics.OVERALL}' row")
    return rows.iloc[0]


def _ndcg_by_stratum(metrics_by_model: dict[str, pd.DataFrame], ndcg: str) -> pd.DataFrame:
    """Strata x models table of NDCG, strata sorted, ``overall`` last."""
    wide = pd.DataFrame({m: t.set_index("slice")[ndcg] for m, t in metrics_by_model.items()})
    strata = sorted(s for s in wide.index if s != metrics.OVERALL)
    return wide.reindex([*strata, metrics.OVERALL])


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _table_header(cells: list[str]) -> list[str]:
    return [_row(cells), _row(["---"] * len(cells))]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ---------------------------------------------------------------- plots


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure  # lazy: only the report needs matplotlib

    return Figure(figsize=(width, height), layout="constrained")


def _plot_scores(scored: dict[str, pd.DataFrame], path: Path) -> None:
    # One panel per model: an untrained model's score scale need not match the 0-4 grade scale.
    n = max(len(scored), 1)
    fig = _figure(3.2 * n, 3.0)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (model, frame) in zip(axes, scored.items(), strict=False):
        ax.hist(frame["score"].to_numpy(float), bins=30, color="tab:blue")
        ax.set_title(model)
        ax.set_xlabel("score")
    axes[0].set_ylabel("pairs")
    fig.savefig(path, dpi=100)


def _plot_calibration(with_prob: dict[str, pd.DataFrame], path: Path) -> None:
    fig = _figure(4.5, 4.5)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect")
    for model, frame in with_prob.items():
        bins = metrics.calibration_bins(frame)
        ax.plot(bins["mean_prob"], bins["mean_label"], marker="o", label=model)
    ax.set_xlabel("mean predicted p(grade>=3)")
    ax.set_ylabel("observed share with true grade >= 3")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()
    fig.savefig(path, dpi=100)


def _plot_ndcg(by_stratum: pd.DataFrame, k: int, path: Path) -> None:
    fig = _figure(max(4.0, 1.2 * len(by_stratum) + 2), 3.5)
    ax = fig.subplots()
    x = np.arange(len(by_stratum))
    width = 0.8 / max(len(by_stratum.columns), 1)
    for i, model in enumerate(by_stratum.columns):
        # NaN (no member with a relevant job in the stratum) draws no bar rather than a 0.
        ax.bar(x + i * width, by_stratum[model].to_numpy(float), width, label=model)
    ax.set_xticks(x + width * (len(by_stratum.columns) - 1) / 2, by_stratum.index)
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_ylim(0, 1)
    fig.legend(loc="outside upper center", ncols=len(by_stratum.columns))
    fig.savefig(path, dpi=100)

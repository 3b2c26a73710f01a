"""Ranking and calibration metrics for the eval gate. Pure pandas/numpy.

Every function reads a scored frame with one row per ``(member_id, job_id)`` and the columns:

- ``member_id``, ``job_id``: the pair (``job_id`` only breaks score ties);
- ``score``: the model's score, higher is better (for teachers and students the expected grade);
- the graded label, ``true_grade`` by default (functions take the label column as an argument:
  evaluation passes ``gold_grade``, and ``true_grade`` only where the simulator's truth exists);
- optional: ``grade`` (the model's 0-4 grade, e.g.
  ``rint(score)`` or argmax), ``teacher_score`` (the teacher's expected grade), ``p_ge_3`` (the
  model's p(grade >= 3)), ``stratum`` (the slice a pair belongs to).

Missing values: the required columns (``member_id``, ``job_id``, ``score``, the label) must
be complete, because a NaN score is a scoring bug to surface, not to average away; in the optional
columns a missing value means "not labelled for this pair" and the metric drops that row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PROB_COL = "p_ge_3"
POSITIVE_MIN_GRADE = 3
OVERALL = "overall"
N_GRADES = 5


# ---------------------------------------------------------------- ranking


def ndcg_at_k(
    frame: pd.DataFrame, k: int = 10, gain_col: str = "true_grade", score_col: str = "score"
) -> float:
    """Mean over members of ``DCG@k / IDCG@k`` (:func:`ndcg_by_member`); NaN when no member
    counts (including an empty frame)."""
    per_member = ndcg_by_member(frame, k, gain_col, score_col)
    return float(per_member.mean()) if len(per_member) else float("nan")


def ndcg_by_member(
    frame: pd.DataFrame, k: int = 10, gain_col: str = "true_grade", score_col: str = "score"
) -> pd.Series:
    """``DCG@k / IDCG@k`` per member, indexed by member_id.

    For one member, sort its rows by ``score`` descending, ties broken by ``job_id`` ascending (so
    the result is deterministic), and let ``g_r`` be ``gain_col`` at rank ``r = 1, 2, ...``:
    ``DCG@k = sum_{r <= min(k, n)} (2^g_r - 1) / log2(r + 1)``. ``IDCG@k`` is the same sum with the
    rows sorted by ``gain_col`` descending (the best possible order). A member whose ``IDCG@k`` is
    0 (every gain 0: nothing relevant to rank) is left out, not counted as 0 or 1.
    """
    _check_k(k)
    m, s, j, g = _ranking_arrays(frame, score_col, gain_col)
    if m.size == 0:
        return pd.Series(dtype=float)
    gain = np.exp2(g) - 1.0
    ids = pd.factorize(frame["member_id"], sort=True)[1]
    n_members = len(ids)
    dcg = _dcg(m, gain, np.lexsort((j, -s, m)), k, n_members)
    idcg = _dcg(m, gain, np.lexsort((-gain, m)), k, n_members)
    counted = idcg > 0
    return pd.Series(dcg[counted] / idcg[counted], index=np.asarray(ids)[counted])


def paired_bootstrap(
    a: pd.Series,
    b: pd.Series,
    *,
    statistic: str = "difference",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """A paired member bootstrap of ``mean(a) - mean(b)`` (or ``mean(a) / mean(b)``).

    ``a`` and ``b`` are per-member values (e.g. :func:`ndcg_by_member` of two models on the same
    labels), aligned on the members both have. Members are resampled with replacement and the
    same draw is used for both sides, so what the members share cancels out. Returns
    ``estimate`` (on all members), ``ci_low``/``ci_high`` (2.5th/97.5th percentiles),
    ``a``/``b`` (the two means) and ``members``.
    """
    if statistic not in ("difference", "ratio"):
        raise ValueError(f"statistic must be 'difference' or 'ratio', got {statistic!r}")
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    x, y = both.a.to_numpy(float), both.b.to_numpy(float)
    n = len(both)
    nan = float("nan")
    if n == 0:
        return {"estimate": nan, "ci_low": nan, "ci_high": nan, "a": nan, "b": nan, "members": 0}

    def stat(xm, ym):
        return xm - ym if statistic == "difference" else xm / np.where(ym == 0, np.nan, ym)

    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    reps = stat(x[draws].mean(axis=1), y[draws].mean(axis=1))
    reps = reps[~np.isnan(reps)]
    low, high = np.percentile(reps, [2.5, 97.5]) if reps.size else (nan, nan)
    return {
        "estimate": float(stat(x.mean(), y.mean())),
        "ci_low": float(low),
        "ci_high": float(high),
        "a": float(x.mean()),
        "b": float(y.mean()),
        "members": n,
    }


def bootstrap_interval(
    values: pd.Series, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the mean of ``values`` (e.g. per-member NDCG) over
    ``n_boot`` resamples of its entries with replacement; NaNs when there are none."""
    x = values.dropna().to_numpy(float)
    if x.size == 0:
        return float("nan"), float("nan")
    means = x[np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def poor_match_rate_at_k(
    frame: pd.DataFrame,
    k: int = 10,
    poor_max_grade: int = 1,
    score_col: str = "score",
    label_col: str = "true_grade",
) -> float:
    """Share of shown rows that are poor matches: pool each member's top ``min(k, n)`` rows by
    ``score`` (ties by ``job_id`` ascending, as in :func:`ndcg_at_k`) and return the fraction with
    ``label_col <= poor_max_grade``. A member with more rows weighs more only up to ``k``. NaN for
    an empty frame."""
    _check_k(k)
    m, s, j, g = _ranking_arrays(frame, score_col, label_col)
    if m.size == 0:
        return float("nan")
    order = np.lexsort((j, -s, m))
    top = _rank_in_group(m[order]) < k
    return float(np.mean(g[order][top] <= poor_max_grade))


def auc(
    frame: pd.DataFrame,
    positive_min_grade: int = POSITIVE_MIN_GRADE,
    label_col: str = "true_grade",
    score_col: str = "score",
) -> float:
    """ROC AUC of ``score`` for the label ``label_col >= positive_min_grade``, pooled over all rows
    (not per member): the Mann-Whitney probability that a random positive outscores a random
    negative, a tie counting 1/2. Computed from average ranks:
    ``(sum of positive ranks - P (P + 1) / 2) / (P N)``. NaN when either class is absent."""
    s = _numeric(frame, score_col)
    y = _numeric(frame, label_col) >= positive_min_grade
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def kendall_tau_to_teacher(
    frame: pd.DataFrame, score_col: str = "score", teacher_col: str = "teacher_score"
) -> float:
    """Mean over members of Kendall's tau-b between the member's ``score`` and ``teacher_col``.

    Per member, over all pairs of rows ``i < j`` with ``a = sign(x_i - x_j)`` and
    ``b = sign(y_i - y_j)``: ``tau_b = sum(a * b) / sqrt(#(a != 0) * #(b != 0))``, i.e.
    ``(concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y))``. Rows with a missing teacher
    score are dropped first; members with fewer than 2 rows, or whose score or teacher list is
    constant (tau-b undefined), are skipped. NaN when no member counts.
    """
    data = frame[["member_id", score_col, teacher_col]].dropna(subset=[teacher_col])
    _require_complete(data, ["member_id", score_col])
    taus = [
        _tau_b(grp[score_col].to_numpy(float), grp[teacher_col].to_numpy(float))
        for _, grp in data.groupby("member_id", sort=False)
        if len(grp) >= 2
    ]
    taus = [t for t in taus if not np.isnan(t)]
    return float(np.mean(taus)) if taus else float("nan")


# ---------------------------------------------------------------- agreement and calibration


def weighted_kappa(frame: pd.DataFrame, a: str = "gold_grade", b: str = "grade") -> float:
    """Linear weighted kappa of grades ``a`` vs ``b`` (:func:`jobs.raters.linear_weighted_kappa`:
    ``1 - sum(w * observed) / sum(w * expected)`` with ``w = |i - j| / 4``). Rows missing either
    grade are dropped; NaN when none is left."""
    data = frame[[a, b]].dropna()
    return linear_weighted_kappa(data[a].to_numpy(), data[b].to_numpy())


def calibration_bins(
    frame: pd.DataFrame,
    prob_col: str = PROB_COL,
    label_col: str = "true_grade",
    n_bins: int = 10,
    positive_min_grade: int | None = POSITIVE_MIN_GRADE,
) -> pd.DataFrame:
    """The reliability table that :func:`expected_calibration_error` summarises.

    Equal-width bins over [0, 1]: bin ``i`` holds ``i / n_bins <= p < (i + 1) / n_bins``, the last
    bin also ``p = 1``. The label is ``label_col >= positive_min_grade``, or ``label_col`` itself
    (0/1) when ``positive_min_grade`` is None. Rows with a missing probability are dropped;
    probabilities outside [0, 1] raise ``ValueError``. One row per non-empty bin: ``bin``, ``lo``,
    ``hi``, ``count``, ``mean_prob``, ``mean_label``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    data = frame[[prob_col, label_col]].dropna(subset=[prob_col])
    p = data[prob_col].to_numpy(float)
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError(f"{prob_col}: probabilities must be in [0, 1]")
    raw = _numeric(data, label_col)
    y = raw >= positive_min_grade if positive_min_grade is not None else raw
    if positive_min_grade is None and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{label_col}: a binary label must be 0 or 1")
    idx = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y.astype(float), minlength=n_bins)
    used = np.flatnonzero(count)
    return pd.DataFrame(
        {
            "bin": used,
            "lo": used / n_bins,
            "hi": (used + 1) / n_bins,
            "count": count[used],
            "mean_prob": sum_p[used] / count[used],
            "mean_label": sum_y[used] / count[used],
        }
    )


def expected_calibration_error(bins: pd.DataFrame) -> float:
    """ECE of a reliability table (:func:`calibration_bins`):
    ``sum over bins b of |b| / N * |mean prob in b - mean label in b|`` (``N`` counts the rows
    kept). 0 is perfectly calibrated. NaN when no row has a probability."""
    total = bins["count"].sum()
    if total == 0:
        return float("nan")
    gap = (bins["mean_prob"] - bins["mean_label"]).abs()
    return float((bins["count"] * gap).sum() / total)


# ---------------------------------------------------------------- all metrics, per slice


def metric_names(k: int = 10) -> list[str]:
    """The metric keys of :func:`evaluate`, in report order."""
    return [
        f"ndcg_at_{k}",
        f"poor_match_rate_at_{k}",
        f"auc_grade_ge_{POSITIVE_MIN_GRADE}",
        "weighted_kappa",
        "kendall_tau_to_teacher",
        "kl_to_teacher",
        "ece",
    ]


def kl_to_teacher(
    frame: pd.DataFrame, probs_col: str = "grade_probs", teacher_col: str = "teacher_probs"
) -> float:
    """Mean over rows of ``KL(teacher || model) = sum_g t_g (log t_g - log p_g)`` (nats), on
    rows that have both distributions; model probabilities are floored at 1e-9. NaN when none."""
    data = frame[[probs_col, teacher_col]].dropna()
    if data.empty:
        return float("nan")
    p = np.clip(np.stack(data[probs_col].to_numpy()).astype(float), 1e-9, 1.0)
    t = np.stack(data[teacher_col].to_numpy()).astype(float)
    ratio = np.where(t > 0, np.log(np.clip(t, 1e-12, 1.0)) - np.log(p), 0.0)
    return float((t * ratio).sum(axis=1).mean())


def evaluate(frame: pd.DataFrame, *, k: int = 10, label: str = "true_grade") -> dict[str, float]:
    """Every metric on ``frame`` against the grades in ``label``: ``members`` (with a relevant
    pair), ``pairs`` (rows), then :func:`metric_names`. Rows without a ``label`` are dropped
    first. ``weighted_kappa`` needs ``grade``; ``kendall_tau_to_teacher`` needs
    ``teacher_score``; ``kl_to_teacher`` needs ``grade_probs`` and ``teacher_probs``; ``ece``
    needs ``p_ge_3``; each is NaN when its input column is absent or empty."""
    frame = frame[frame[label].notna()]
    cols = set(frame.columns)
    ndcg, poor, auc_name, kappa, tau, kl, ece = metric_names(k)
    nan = float("nan")

    def has(col: str) -> bool:
        return col in cols and frame[col].notna().any()

    return {
        "members": int(len(ndcg_by_member(frame, k, label))),
        "pairs": len(frame),
        ndcg: ndcg_at_k(frame, k, label),
        poor: poor_match_rate_at_k(frame, k, label_col=label),
        auc_name: auc(frame, label_col=label),
        kappa: weighted_kappa(frame, label, "grade") if has("grade") else nan,
        tau: kendall_tau_to_teacher(frame) if has("teacher_score") else nan,
        kl: kl_to_teacher(frame) if has("grade_probs") and has("teacher_probs") else nan,
        ece: expected_calibration_error(calibration_bins(frame, label_col=label))
        if has(PROB_COL)
        else nan,
    }


def evaluate_by(
    frame: pd.DataFrame, by: str = "stratum", k: int = 10, label: str = "true_grade"
) -> pd.DataFrame:
    """:func:`evaluate` per value of ``by`` (sorted; a member whose pairs span several values is
    split between them), then an ``'overall'`` row on the whole frame. Columns: ``slice``
    (str), ``members``, ``pairs``, then :func:`metric_names`."""
    rows = [
        {"slice": str(key)} | evaluate(part, k=k, label=label)
        for key, part in frame.groupby(by, sort=True, dropna=False)
    ]
    rows.append({"slice": OVERALL} | evaluate(frame, k=k, label=label))
    return pd.DataFrame(rows, columns=["slice", "members", "pairs", *metric_names(k)])


# ---------------------------------------------------------------- grade agreement


def confusion_matrix(a, b, n_classes: int = N_GRADES) -> np.ndarray:
    """Counts ``C[i, j]`` of pairs with ``a == i`` and ``b == j`` (rows: ``a``, columns: ``b``),
    as an ``(n_classes, n_classes)`` int64 array."""
    x, y = _classes(a, n_classes, "a"), _classes(b, n_classes, "b")
    if len(x) != len(y):
        raise ValueError(f"confusion_matrix: {len(x)} vs {len(y)} labels")
    return np.bincount(x * n_classes + y, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def linear_weighted_kappa(a, b, n_classes: int = N_GRADES) -> float:
    """Cohen's kappa with linear weights ``|i - j| / (n_classes - 1)``:
    ``1 - sum(w * observed) / sum(w * expected)``, ``expected`` being the outer product of the two
    marginal distributions. 1 is perfect agreement, 0 chance level, below 0 worse than chance.
    NaN for no pairs; 1.0 when both sides use one and the same class throughout (no
    disagreement is possible, and none is observed)."""
    counts = confusion_matrix(a, b, n_classes).astype(float)
    total = counts.sum()
    if total == 0:
        return float("nan")
    observed = counts / total
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    idx = np.arange(n_classes)
    weights = np.abs(idx[:, None] - idx[None, :]) / max(n_classes - 1, 1)
    disagree_expected = float((weights * expected).sum())
    if disagree_expected == 0.0:
        return 1.0
    return 1.0 - float((weights * observed).sum()) / disagree_expected


def _classes(values, n_classes: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    fractional = arr.size and not np.issubdtype(arr.dtype, np.integer)
    if fractional and not np.all(np.mod(arr.astype(float), 1) == 0):
        raise ValueError(f"{name}: grades must be integers")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name}: grades must be in 0..{n_classes - 1}")
    return arr


# ---------------------------------------------------------------- helpers


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _require_complete(frame: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if frame[c].isna().any()]
    if missing:
        raise ValueError(f"missing values in required column(s) {missing}")


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    _require_complete(frame, [col])
    return frame[col].to_numpy(dtype=float)


def _ranking_arrays(
    frame: pd.DataFrame, score_col: str, gain_col: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Member codes, scores, job codes (both codes in sorted-id order) and gains, as arrays."""
    _require_complete(frame, ["member_id", "job_id"])
    m, _ = pd.factorize(frame["member_id"], sort=True)
    j, _ = pd.factorize(frame["job_id"], sort=True)
    return m, _numeric(frame, score_col), j, _numeric(frame, gain_col)


def _rank_in_group(sorted_groups: np.ndarray) -> np.ndarray:
    """0-based position of each row within its run of equal group codes (input sorted by group)."""
    n = sorted_groups.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.concatenate(([True], sorted_groups[1:] != sorted_groups[:-1]))
    starts = np.flatnonzero(new)
    return np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))


def _dcg(m: np.ndarray, gain: np.ndarray, order: np.ndarray, k: int, n_members: int) -> np.ndarray:
    """Per-member DCG@k of ``gain`` taken in ``order`` (which must group rows by member)."""
    rank = _rank_in_group(m[order])
    weight = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return np.bincount(m[order], weights=gain[order] * weight, minlength=n_members)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.concatenate(([True], xs[1:] != xs[:-1]))
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], xs.size)  # exclusive
    ranks = np.empty(x.size)
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def _tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b over all pairs i < j; NaN when either side is constant."""
    i, j = np.triu_indices(x.size, k=1)
    a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    denom = np.sqrt(float(np.count_nonzero(a)) * float(np.count_nonzero(b)))
    return float(np.sum(a * b) / denom) if denom > 0 else float("nan")

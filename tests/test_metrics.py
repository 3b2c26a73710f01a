"""Eval metrics against hand-computed cases, cross-checked with sklearn/scipy, and the report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import ndcg_score, roc_auc_score

from jobs.quality import metrics
from jobs.quality.report import write_report

L3 = math.log2(3)  # discount at rank 2


def _pairs() -> pd.DataFrame:
    """Two members, three jobs each.

    member A, by score: a1 (0.9, grade 1, gain 1), a2 (0.5, grade 3, gain 7), a3 (0.1, grade 0)
    member B, by score: b2 (0.8, grade 4, gain 15), b3 (0.8, grade 0) tied with b2 and placed
    after it because "b2" < "b3", b1 (0.2, grade 2, gain 3)
    """
    return pd.DataFrame(
        {
            "member_id": ["A", "A", "A", "B", "B", "B"],
            "job_id": ["a1", "a2", "a3", "b1", "b2", "b3"],
            "score": [0.9, 0.5, 0.1, 0.2, 0.8, 0.8],
            "true_grade": [1, 3, 0, 2, 4, 0],
        }
    )


# A: DCG = 1/1 + 7/log2(3) + 0 = 5.4165; IDCG = 7/1 + 1/log2(3) = 7.6309 -> 0.70981
NDCG_A = (1 + 7 / L3) / (7 + 1 / L3)
# B: DCG = 15/1 + 0/log2(3) + 3/log2(4) = 16.5; IDCG = 15/1 + 3/log2(3) = 16.8928 -> 0.97677
NDCG_B = (15 + 3 / 2) / (15 + 3 / L3)


# ---------------------------------------------------------------- NDCG


def test_ndcg_hand_computed():
    assert metrics.ndcg_at_k(_pairs(), k=10) == pytest.approx((NDCG_A + NDCG_B) / 2)
    # k=1: A shows a1 (gain 1) where 7 was possible; B shows b2 (15 of 15).
    assert metrics.ndcg_at_k(_pairs(), k=1) == pytest.approx((1 / 7 + 1) / 2)


def test_ndcg_ties_broken_by_job_id_ascending():
    frame = _pairs()
    frame.loc[frame.job_id == "b3", "job_id"] = "b0"  # the grade-0 tie now comes first
    ndcg_b = (0 + 15 / L3 + 3 / 2) / (15 + 3 / L3)
    assert metrics.ndcg_at_k(frame) == pytest.approx((NDCG_A + ndcg_b) / 2)
    # and row order does not matter
    shuffled = frame.sample(frac=1.0, random_state=3)
    assert metrics.ndcg_at_k(shuffled) == pytest.approx(metrics.ndcg_at_k(frame))


def test_ndcg_skips_members_with_no_relevant_job():
    zero = pd.DataFrame(
        {"member_id": "C", "job_id": ["c1", "c2"], "score": [0.3, 0.4], "true_grade": [0, 0]}
    )
    assert metrics.ndcg_at_k(pd.concat([_pairs(), zero])) == pytest.approx((NDCG_A + NDCG_B) / 2)
    assert math.isnan(metrics.ndcg_at_k(zero))
    assert math.isnan(metrics.ndcg_at_k(_pairs().iloc[:0]))


def test_ndcg_other_gain_column():
    frame = _pairs().assign(gold_grade=[3, 1, 0, 2, 4, 0])
    # A by score: gains 7, 1, 0 -> ideal order already; B unchanged.
    assert metrics.ndcg_at_k(frame, gain_col="gold_grade") == pytest.approx((1 + NDCG_B) / 2)


def test_ndcg_rejects_missing_scores_and_bad_k():
    frame = _pairs()
    frame.loc[0, "score"] = np.nan
    with pytest.raises(ValueError, match="score"):
        metrics.ndcg_at_k(frame)
    with pytest.raises(ValueError, match="k must be"):
        metrics.ndcg_at_k(_pairs(), k=0)


def test_ndcg_matches_sklearn(random_pairs):
    frame = random_pairs
    expected = []
    for _, grp in frame.groupby("member_id"):
        gain = 2.0 ** grp.true_grade.to_numpy() - 1  # sklearn uses y_true as the gain itself
        if gain.sum() > 0:  # sklearn would score these members 0; ours skips them
            expected.append(ndcg_score([gain], [grp.score.to_numpy()], k=10))
    assert metrics.ndcg_at_k(frame, k=10) == pytest.approx(np.mean(expected), rel=1e-12)


# ---------------------------------------------------------------- poor-match rate


def test_poor_match_rate_hand_computed():
    frame = _pairs()
    # k=1: A shows a1 (grade 1: poor), B shows b2 (grade 4) -> 1/2
    assert metrics.poor_match_rate_at_k(frame, k=1) == pytest.approx(1 / 2)
    # k=2, poor means grade 0: A shows a1, a2 (none); B shows b2, b3 (b3) -> 1/4
    assert metrics.poor_match_rate_at_k(frame, k=2, poor_max_grade=0) == pytest.approx(1 / 4)
    # a member with fewer than k rows contributes all of them: A's 2 shown + D's 1 row
    one = pd.DataFrame({"member_id": ["D"], "job_id": ["d1"], "score": [0.0], "true_grade": [0]})
    pooled = pd.concat([frame[frame.member_id == "A"], one])
    assert metrics.poor_match_rate_at_k(pooled, k=2) == pytest.approx(2 / 3)
    assert math.isnan(metrics.poor_match_rate_at_k(frame.iloc[:0]))


# ---------------------------------------------------------------- AUC


def test_auc_hand_computed_with_tie():
    # positives (grade >= 3): a2 0.5, b2 0.8; negatives: 0.9, 0.1, 0.2, 0.8
    # a2 beats 0.1 and 0.2 -> 2; b2 beats 0.1, 0.2 and ties 0.8 -> 2.5; (2 + 2.5) / (2 * 4)
    assert metrics.auc(_pairs()) == pytest.approx(4.5 / 8)


def test_auc_single_class_is_nan():
    frame = _pairs().assign(true_grade=[0, 1, 2, 0, 1, 2])
    assert math.isnan(metrics.auc(frame))
    assert math.isnan(metrics.auc(frame.assign(true_grade=4)))


def test_auc_matches_sklearn(random_pairs):
    frame = random_pairs.assign(score=random_pairs.score.round(1))  # many ties
    expected = roc_auc_score(frame.true_grade >= 3, frame.score)
    assert metrics.auc(frame) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- Kendall tau


def test_kendall_tau_hand_computed():
    frame = pd.DataFrame(
        {
            "member_id": ["A"] * 3 + ["B"] * 3 + ["C"] + ["E"] * 2,
            "score": [1, 2, 3, 1, 1, 2, 5, 1, 2],
            "teacher_score": [1, 3, 2, 1, 2, 3, 5, 2, 2],
        }
    )
    # A: pairs (1,2) C, (1,3) C, (2,3) D -> (2 - 1) / 3
    # B: x ties on (1,2); (1,3) C, (2,3) C -> 2 / sqrt(2 * 3)
    # C: one row, skipped; E: teacher constant, tau-b undefined, skipped
    expected = (1 / 3 + 2 / math.sqrt(6)) / 2
    assert metrics.kendall_tau_to_teacher(frame) == pytest.approx(expected)
    assert math.isnan(metrics.kendall_tau_to_teacher(frame[frame.member_id.isin(["C", "E"])]))


def test_kendall_tau_drops_missing_teacher_scores():
    frame = pd.DataFrame(
        {"member_id": "A", "score": [1.0, 2.0, 3.0], "teacher_score": [1.0, 2.0, np.nan]}
    )
    assert metrics.kendall_tau_to_teacher(frame) == pytest.approx(1.0)


def test_kendall_tau_matches_scipy(random_pairs):
    frame = random_pairs
    expected = [
        kendalltau(g.score, g.teacher_score).statistic for _, g in frame.groupby("member_id")
    ]
    assert metrics.kendall_tau_to_teacher(frame) == pytest.approx(np.nanmean(expected))


# ---------------------------------------------------------------- kappa and ECE


def test_weighted_kappa_hand_computed():
    frame = pd.DataFrame({"gold_grade": [0, 1, 2, 3, np.nan], "grade": [0, 1, 2, 4, 2]})
    # observed disagreement: one pair in four off by 1 step of 4 -> 1/16
    # expected: marginals 1/4 each; sum |i - j| over gold {0,1,2,3} x grade {0,1,2,4} = 24,
    # so 24 / 4 / 16 = 6/16 -> kappa = 1 - 1/6. The NaN gold row is dropped.
    assert metrics.weighted_kappa(frame) == pytest.approx(5 / 6)
    assert metrics.weighted_kappa(frame.iloc[:3]) == pytest.approx(1.0)
    assert math.isnan(metrics.weighted_kappa(frame.iloc[4:]))


def test_ece_hand_computed():
    frame = pd.DataFrame({"p_ge_3": [0.05, 0.15, 0.95, 1.0, np.nan], "true_grade": [0, 4, 3, 4, 4]})
    # bin 0: p .05 vs 0 -> .05; bin 1: .15 vs 1 -> .85; bin 9 (1.0 included): .975 vs 1 -> .025
    # weights 1/4, 1/4, 2/4; the NaN probability row is dropped
    expected = 0.05 / 4 + 0.85 / 4 + 0.025 / 2
    ece = metrics.expected_calibration_error
    assert ece(metrics.calibration_bins(frame)) == pytest.approx(expected)
    binary = frame.assign(label=[0, 1, 1, 1, 1])
    as_binary = metrics.calibration_bins(binary, label_col="label", positive_min_grade=None)
    assert ece(as_binary) == pytest.approx(expected)
    bins = metrics.calibration_bins(frame)
    assert bins["bin"].tolist() == [0, 1, 9] and bins["count"].tolist() == [1, 1, 2]
    assert ece(metrics.calibration_bins(frame, n_bins=1)) == pytest.approx(abs(0.5375 - 0.75))


def test_ece_rejects_out_of_range_probabilities():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.calibration_bins(pd.DataFrame({"p_ge_3": [1.2], "true_grade": [3]}))


# ---------------------------------------------------------------- evaluate, slices, bootstrap


def test_evaluate_optional_columns_nan_when_absent():
    out = metrics.evaluate(_pairs())
    assert out["members"] == 2 and out["pairs"] == 6
    assert out["ndcg_at_10"] == pytest.approx((NDCG_A + NDCG_B) / 2)
    for name in ("weighted_kappa", "kendall_tau_to_teacher", "kl_to_teacher", "ece"):
        assert math.isnan(out[name])


def test_evaluate_by_matches_the_functions(random_pairs):
    table = metrics.evaluate_by(random_pairs, by="stratum", k=5)
    assert list(table.columns) == ["slice", "members", "pairs", *metrics.metric_names(5)]
    strata = sorted(random_pairs.stratum.unique())
    assert table.slice.tolist() == [*strata, "overall"]
    part = random_pairs[random_pairs.stratum == strata[0]]
    first = table.iloc[0]
    assert first["pairs"] == len(part) and first["members"] == part.member_id.nunique()
    assert first["ndcg_at_5"] == pytest.approx(metrics.ndcg_at_k(part, k=5))
    overall = table.iloc[-1]
    assert overall["pairs"] == len(random_pairs)
    assert overall["weighted_kappa"] == pytest.approx(
        metrics.weighted_kappa(random_pairs, "true_grade", "grade")
    )
    bins = metrics.calibration_bins(random_pairs)
    assert overall["ece"] == pytest.approx(metrics.expected_calibration_error(bins))
    assert overall["auc_grade_ge_3"] == pytest.approx(metrics.auc(random_pairs))


def test_ndcg_by_member_is_what_ndcg_averages(random_pairs):
    per_member = metrics.ndcg_by_member(random_pairs, k=5)
    assert per_member.index.is_unique and per_member.between(0, 1).all()
    assert per_member.mean() == pytest.approx(metrics.ndcg_at_k(random_pairs, k=5))
    one = random_pairs[random_pairs.member_id == per_member.index[0]]
    assert per_member.iloc[0] == pytest.approx(metrics.ndcg_at_k(one, k=5))


def test_paired_bootstrap_sees_a_real_gain_and_not_a_null_one(random_pairs):
    good = metrics.ndcg_by_member(random_pairs)
    shuffled = random_pairs.assign(score=np.random.default_rng(3).permutation(random_pairs.score))
    bad = metrics.ndcg_by_member(shuffled)
    gain = metrics.paired_bootstrap(good, bad, n_boot=500, seed=1)
    assert gain["estimate"] == pytest.approx(good.mean() - bad.mean())
    assert 0 < gain["ci_low"] < gain["estimate"] < gain["ci_high"]
    assert gain["members"] == random_pairs.member_id.nunique()
    null = metrics.paired_bootstrap(good, good, n_boot=200)
    assert null["ci_low"] == null["ci_high"] == 0  # pairing: identical models never differ
    assert metrics.paired_bootstrap(good, bad, n_boot=500, seed=1) == gain  # seeded
    ratio = metrics.paired_bootstrap(good, bad, statistic="ratio", n_boot=200)
    assert ratio["estimate"] == pytest.approx(good.mean() / bad.mean())
    # only members both sides have are compared
    assert metrics.paired_bootstrap(good.iloc[:10], bad, n_boot=10)["members"] == 10
    assert math.isnan(metrics.paired_bootstrap(good.iloc[:0], bad)["estimate"])
    with pytest.raises(ValueError, match="statistic"):
        metrics.paired_bootstrap(good, bad, statistic="mean")


def test_kl_to_teacher_is_zero_on_itself_and_positive_otherwise():
    t = [np.array([0.1, 0.2, 0.3, 0.2, 0.2]), np.array([1.0, 0, 0, 0, 0])]
    p = [np.array([0.2, 0.2, 0.2, 0.2, 0.2]), np.array([0.5, 0.5, 0, 0, 0])]
    same = pd.DataFrame({"grade_probs": t, "teacher_probs": t})
    assert metrics.kl_to_teacher(same) == pytest.approx(0, abs=1e-9)
    other = pd.DataFrame({"grade_probs": p, "teacher_probs": t})
    want = np.mean([sum(a * np.log(a / b)) for a, b in ((t[0], p[0]), (t[1][:1], p[1][:1]))])
    assert metrics.kl_to_teacher(other) == pytest.approx(want)


# ---------------------------------------------------------------- report


def test_report_lists_every_model_and_comparison(tmp_path: Path, random_pairs):
    import datetime as dt

    from jobs.evaluate import comparisons_table, metrics_table

    rng = np.random.default_rng(5)
    probs = list(np.full((len(random_pairs), 5), 0.2))
    frames = {
        "student": random_pairs[["member_id", "job_id", "score", "grade"]].assign(
            grade_probs=probs
        ),
        "teacher": random_pairs[["member_id", "job_id", "grade"]].assign(
            score=random_pairs.true_grade + rng.normal(0, 0.5, len(random_pairs)),
            grade_probs=probs,
        ),
        "prefilter": random_pairs[["member_id", "job_id"]].assign(
            score=rng.normal(size=len(random_pairs))
        ),
    }
    labels = random_pairs[["member_id", "job_id", "gold_grade", "true_grade"]].assign(
        slice="band:" + random_pairs.stratum
    )
    table = metrics_table(frames, labels)
    assert set(table.model) == set(frames) and set(table.label_source) == {"gold", "truth"}
    compared = comparisons_table(frames, labels, n_boot=50, seed=0)
    assert set(compared.baseline) == {"prefilter", "teacher"}
    assert set(compared[compared.baseline == "teacher"].statistic) == {"difference", "ratio"}
    versions = {name: f"{name}-v1" for name in frames}
    path = write_report(table, compared, tmp_path / "eval", dt.date(2026, 1, 1), versions)
    text = (path.parent / "report.md").read_text()
    assert text.startswith("# policyrank evaluation 2026-01-01")
    assert "| student |" in text and "| prefilter |" in text and "hidden true grades" in text
    assert (path.parent / "ndcg.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = path.read_text()  # report.html: the same tables, the plot inside
    assert path.name == "report.html" and "<title>policyrank evaluation 2026-01-01" in page
    assert "<td>student</td>" in page and "<td>prefilter</td>" in page
    assert 'src="data:image/png;base64,' in page
    without_truth = metrics_table(frames, labels.assign(true_grade=np.nan))
    assert set(without_truth.label_source) == {"gold"}


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def random_pairs() -> pd.DataFrame:
    """40 members with 5-25 jobs each; scores correlated with the true grade, no score ties."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 26, 40)
    member = np.repeat([f"m{i:02d}" for i in range(len(sizes))], sizes)
    n = member.size
    true = rng.integers(0, 5, n)
    score = true + rng.normal(0, 1.5, n)
    p = 1 / (1 + np.exp(-(score - 2.5)))
    return pd.DataFrame(
        {
            "member_id": member,
            "job_id": [f"j{i:04d}" for i in rng.permutation(n)],
            "score": score,
            "true_grade": true,
            "gold_grade": np.clip(true + rng.integers(-1, 2, n), 0, 4),
            "grade": np.clip(np.rint(score), 0, 4).astype(int),
            "teacher_score": np.clip(np.rint(true + rng.normal(0, 1, n)), 0, 4),  # ties
            "p_ge_3": p,
            "stratum": np.repeat(rng.choice(["easy", "hard", "cold"], len(sizes)), sizes),
        }
    )


def test_report_shows_the_judges_calibration_and_every_dates_decision(tmp_path: Path):
    import datetime as dt

    from jobs.judge import calibration_rows

    rng = np.random.default_rng(3)
    gold = rng.integers(0, 5, 300)
    graded = pd.DataFrame(
        {
            "member_id": np.arange(300) // 10,
            "job_id": np.arange(300),
            "stratum": "mid|local|x",
            "source": "candidate",
            "injected": False,
            "gold_grade": gold,
            "grade": np.clip(gold + rng.integers(-1, 2, 300), 0, 4),
            "expected_grade": gold + rng.normal(0, 0.5, 300),
        }
    )
    calibration = pd.DataFrame(calibration_rows(graded)).assign(
        run_date=dt.date(2026, 1, 2), teacher_model_id="judge-v1", policy_version="2.0.0"
    )

    def metrics(day: int, models: dict[str, float]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "run_date": dt.date(2026, 1, day),
                    "model": m,
                    "model_version": f"{m}-{day}",
                    "ndcg_at_10": v,
                    "ndcg_at_10_ci_low": v - 0.02,
                    "ndcg_at_10_ci_high": v + 0.02,
                }
                for m, v in models.items()
            ]  # fmt: skip
        )

    history = pd.concat(
        [
            metrics(1, {"student": 0.91, "rules": 0.88, "prefilter": 0.80}),
            metrics(2, {"student": 0.90, "production": 0.91, "rules": 0.89, "prefilter": 0.8}),
        ]
    )
    refused = {"event": "refused", "checks": [
        {"check": "beats the rules baseline", "passed": False},
        {"check": "beats the prefilter", "passed": True}]}  # fmt: skip
    decisions = {"2026-01-01": {"event": "promoted"}, "2026-01-02": refused}
    measures = ["poor_match_rate_at_10", "auc_grade_ge_3", "weighted_kappa",
                "kendall_tau_to_teacher", "kl_to_teacher"]  # fmt: skip
    table = metrics(2, {"student": 0.90}).assign(
        label_source="gold", slice="overall", members=10, **dict.fromkeys(measures, 0.5)
    )
    path = write_report(
        table, pd.DataFrame(columns=["label_source"]), tmp_path / "eval", dt.date(2026, 1, 2),
        {"student": "student-2"}, calibration=calibration, history=history, decisions=decisions,
    )  # fmt: skip
    text = (path.parent / "report.md").read_text()
    overall = calibration.set_index("slice").loc["overall"]
    assert "## The judge against held-out gold (2026-01-02)" in text
    assert (
        f"| overall | 300 | {overall.weighted_kappa:.3f} | {overall.exact_agreement:.3f} |" in text
    )
    assert "| 2026-01-01 | `student-1` 0.910 [0.890, 0.930] | - | 0.880" in text
    assert "| 2026-01-02 | `student-2` 0.900" in text and "`production-2` 0.910" in text
    assert text.rstrip().endswith("| refused: beats the rules baseline |")
    assert "| promoted |" in text
    page = path.read_text()
    for png in ("ndcg.png", "confusion.png", "reliability.png"):
        assert (path.parent / png).read_bytes()[:4] == b"\x89PNG"
    assert page.count('src="data:image/png;base64,') == 3  # one self-contained page

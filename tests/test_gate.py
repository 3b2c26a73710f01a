"""The promotion gate on hand-built eval_metrics rows: each check can refuse on its own."""

import pandas as pd
import pytest

from jobs.evaluate import gate_checks
from jobs.registry import Registry
from jobs.settings import GateSettings

GATE = GateSettings(
    min_teacher_ndcg_share=0.95,
    max_stratum_regression=0.10,
    min_stratum_members=20,
    max_poor_match_rate=0.5,
)


def _metrics(student_ndcg, stratum_ndcg, poor, small_stratum_ndcg=0.0):
    rows = []
    for model, overall, strat, small, p in (
        ("teacher", 0.80, 0.80, 0.9, 0.30),
        ("student", student_ndcg, stratum_ndcg, small_stratum_ndcg, poor),
    ):
        rows += [
            {
                "model": model,
                "slice": "overall",
                "members": 100,
                "ndcg_at_10": overall,
                "poor_match_rate_at_10": p,
            },
            {
                "model": model,
                "slice": "nurse",
                "members": 40,
                "ndcg_at_10": strat,
                "poor_match_rate_at_10": p,
            },
            {
                "model": model,
                "slice": "pharmacist",
                "members": 5,
                "ndcg_at_10": small,
                "poor_match_rate_at_10": p,
            },
        ]
    return pd.DataFrame(rows)


def test_a_good_student_passes_every_check():
    checks = gate_checks(_metrics(0.79, 0.78, 0.3), GATE)
    assert [c["passed"] for c in checks] == [True, True, True]
    assert checks[0]["value"] == pytest.approx(0.79 / 0.80)


@pytest.mark.parametrize(
    ("metrics", "failing"),
    [
        (_metrics(0.70, 0.78, 0.3), "teacher NDCG share"),
        (_metrics(0.79, 0.60, 0.3), "largest stratum NDCG drop (nurse)"),
        (_metrics(0.79, 0.78, 0.7), "poor-match rate@10"),
    ],
)
def test_each_check_refuses_on_its_own(metrics, failing):
    checks = gate_checks(metrics, GATE)
    assert [c["check"] for c in checks if not c["passed"]] == [failing]


def test_small_strata_are_not_gated():
    # the 5-member stratum collapsed, but it is below min_stratum_members
    assert all(c["passed"] for c in gate_checks(_metrics(0.79, 0.78, 0.3, 0.0), GATE))


def test_registry_keeps_history_and_an_atomic_pointer(tmp_path):
    registry = Registry(tmp_path / "registry")
    assert registry.production() is None
    model = tmp_path / "m1"
    model.mkdir()
    (model / "config.json").write_text("{}")
    registry.record({"event": "refused", "model_version": "m0"})
    registry.promote("m1", model, [])
    assert registry.production()["model_version"] == "m1"
    assert [e["event"] for e in registry.history()] == ["refused", "promoted"]
    assert not list((tmp_path / "registry").glob("*.tmp"))

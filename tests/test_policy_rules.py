"""The rules baseline (udfs/policy_rules.py): the policy's dimensions and caps from declared
fields, and nothing from the prose."""

import numpy as np
import pandas as pd
import pytest

from udfs.policy_rules import (
    PolicyRules,
    family,
    normalise,
    parse_title,
    rule_parts,
    rule_scores,
    skill_set,
)


def _member(**changes):
    row = {
        "headline": "Senior Data Engineer at Acme",
        "skills": "Spark, SQL, Python, Airflow",
        "seniority": "senior",
        "location": "Berlin, DE",
        "remote_preference": "hybrid",
        "work_authorization": "DE",
        "summary": "",
    }
    return {**row, **changes}


def _job(**changes):
    row = {
        "title": "Senior Data Engineer",
        "skills": "Spark, SQL, Airflow",
        "seniority": "senior",
        "location": "Berlin, DE",
        "workplace_type": "hybrid",
        "visa_sponsorship": False,
    }
    return {**row, **changes}


def _grade(member: dict, job: dict) -> tuple[int, float]:
    dist = PolicyRules().grade_rows(pd.DataFrame([member]), pd.DataFrame([job]))
    return int(dist.grade[0]), float(dist.expected[0])


def test_text_is_normalised_and_titles_parsed():
    assert normalise("  Node.JS / CI-CD ") == "node js ci cd"
    assert skill_set("SQL, sql , Apache-Spark,, ") == {"sql", "apache spark"}
    assert parse_title("Staff Accountant at Wayne Finance") == (3, frozenset({"accountant"}))
    assert parse_title("Data Engineer") == (None, frozenset({"data", "engineer"}))
    assert family(parse_title("UI/UX Designer")[1]) == "product"
    assert family(parse_title("Account Executive")[1]) == "sales"  # not finance
    assert family(parse_title("Chief Happiness Officer")[1]) is None


def test_a_clear_match_is_4_and_each_cap_applies():
    assert _grade(_member(), _job())[0] == 4
    assert _grade(_member(), _job(location="Munich, DE"))[0] == 1  # another city
    assert _grade(_member(remote_preference="remote"), _job())[0] == 1  # remote only
    remote_gb = _job(location="London, GB", workplace_type="remote")
    assert _grade(_member(), remote_gb)[0] == 1  # not authorized, no sponsorship
    assert _grade(_member(), {**remote_gb, "visa_sponsorship": True})[0] == 4
    assert _grade(_member(), _job(seniority="principal"))[0] == 2  # two levels apart
    nurse = _job(title="Registered Nurse", skills="Patient Care, BLS")
    assert _grade(_member(), nurse)[0] <= 1  # another family


def test_it_reads_only_declared_fields():
    """What only the prose says, or a skill under another name, is lost on the rules: the gap
    the student must close."""
    base = _grade(_member(), _job(skills="Spark, SQL, Airflow, Kubernetes"))
    in_prose = _member(summary="Day to day I work with Kubernetes.")
    assert _grade(in_prose, _job(skills="Spark, SQL, Airflow, Kubernetes")) == base
    named = _grade(_member(skills="Spark, SQL, Kubernetes"), _job(skills="Kubernetes"))
    aliased = _grade(_member(skills="Spark, SQL, k8s"), _job(skills="Kubernetes"))
    assert named[0] == 4 and aliased[0] == 2  # "k8s" is Kubernetes, but not to the rules
    eu = _member(summary="EU citizen.")
    assert _grade(eu, _job(location="Paris, FR", workplace_type="remote"))[0] == 1
    # the headline's level word wins over the (possibly stale) seniority field
    promoted = _member(seniority="mid")
    assert _grade(promoted, _job())[0] == 4


def test_the_score_orders_capped_pairs_below_the_cap_by_their_fit():
    parts = rule_parts(
        pd.DataFrame([_member(), _member(skills="Excel")]),
        pd.DataFrame([_job(location="Munich, DE")] * 2),
    )
    scores = rule_scores(parts)
    assert 0.8 <= scores[1] < scores[0] <= 1.0


@pytest.mark.parametrize("score", [0.0, 0.3, 1.5, 2.99, 3.7, 4.0])
def test_the_distribution_keeps_the_score_as_its_expectation(monkeypatch, score):
    import udfs.policy_rules as rules

    monkeypatch.setattr(rules, "rule_scores", lambda parts: np.array([score]))
    dist = PolicyRules().grade_rows(pd.DataFrame([_member()]), pd.DataFrame([_job()]))
    assert dist.probs.sum() == pytest.approx(1.0)
    assert dist.expected[0] == pytest.approx(score, abs=1e-6)
    assert dist.grade[0] in (int(np.floor(score)), min(int(np.floor(score)) + 1, 4))

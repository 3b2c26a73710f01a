"""The candidate join: no cross product in the plan, and most truly good pairs survive it."""

import dataclasses

import numpy as np
import pytest

from jobs.config.settings import load_settings
from jobs.pairs.blocking import candidate_pairs
from jobs.warehouse.validation import JOB_RULES, MEMBER_RULES, validate_rows
from sim import world

DEFAULTS = load_settings()


@pytest.fixture(scope="module")
def blocked(spark, cookbook):
    """The join over the cookbook's world (tests/conftest.py: 400 members x 150 jobs, 5% bad
    rows), on the rows that pass validation, top 20 per member."""

    def read(name):
        return spark.read.format("delta").load(str(cookbook / name))

    members = validate_rows(read("members"), MEMBER_RULES, max_text_chars=20000).passed.cache()
    jobs = validate_rows(read("jobs"), JOB_RULES, max_text_chars=20000).passed.cache()
    pairs = candidate_pairs(members, jobs, dataclasses.replace(DEFAULTS.candidates, top_k=20))
    return members, jobs, pairs, read("truth").toPandas()


def test_plan_has_no_cross_product(blocked):
    _, _, pairs, _ = blocked
    plan = pairs._jdf.queryExecution().executedPlan().toString()
    assert "SortMergeJoin" in plan or "BroadcastHashJoin" in plan
    assert "CartesianProduct" not in plan
    assert "BroadcastNestedLoopJoin" not in plan


def test_top_k_per_member_and_ranks(blocked):
    _, _, pairs, _ = blocked
    p = pairs.toPandas()
    assert p.groupby("member_id").size().max() <= 20
    assert not p.duplicated(["member_id", "job_id"]).any()
    first = p[p.prefilter_rank == 1].set_index("member_id").prefilter_score
    assert (p.groupby("member_id").prefilter_score.max() == first).all()


def test_most_truly_good_pairs_survive(blocked):
    members, jobs, pairs, truth = blocked
    m_ids = [r.member_id for r in members.select("member_id").collect()]
    j_ids = [r.job_id for r in jobs.select("job_id").collect()]
    good = world.good_pairs(truth, m_ids, j_ids)
    kept = pairs.select("member_id", "job_id").toPandas()
    recall = len(good.merge(kept)) / len(good)
    print(
        f"candidate recall of true grade>=3 pairs: {recall:.3f} over {len(good)} pairs; "
        f"{len(kept)} candidates out of {len(m_ids) * len(j_ids)} possible pairs"
    )
    assert len(good) > 50
    assert recall >= 0.9
    assert len(kept) < 0.1 * len(m_ids) * len(j_ids)


def test_remote_only_members_get_only_remote_jobs(blocked):
    members, jobs, pairs, _ = blocked
    remote_only = members.where("remote_preference = 'remote'").select("member_id")
    onsite = jobs.where("workplace_type != 'remote'").select("job_id")
    assert pairs.join(remote_only, "member_id").join(onsite, "job_id").count() == 0


def test_pairs_with_no_skill_string_in_common_meet_through_their_family(blocked):
    """Exact skill keys miss "k8s" / "Kubernetes" and skills named only in a summary; the title
    family key forms those pairs. A city the summary names is a location key too."""
    from udfs.policy_rules import family, parse_title, skill_set

    members, jobs, pairs, _ = blocked
    m = members.toPandas().set_index("member_id")
    j = jobs.toPandas().set_index("job_id")
    p = pairs.toPandas()
    shared = [
        len(skill_set(m.skills[a]) & skill_set(j.skills[b]))
        for a, b in zip(p.member_id, p.job_id, strict=True)
    ]
    by_family = p[np.array(shared) == 0]
    assert len(by_family) > 20
    for a, b in zip(by_family.member_id, by_family.job_id, strict=True):
        assert family(parse_title(m.headline[a])[1]) == family(parse_title(j.title[b])[1])
    # members whose summary names another job city (a move, a relocation) meet its on-site jobs
    on_site = j[j.workplace_type != "remote"]
    cities = {loc.split(",")[0] for loc in on_site.location}
    named = {
        a: {c for c in cities if c.lower() in s.lower() and not loc.startswith(c)}
        for a, s, loc, pref in zip(
            m.index, m.summary.fillna(""), m.location, m.remote_preference, strict=True
        )
        if pref != "remote"
    }
    met = p.merge(on_site[["location"]], left_on="job_id", right_index=True)
    via_summary = [
        (a, loc)
        for a, loc in zip(met.member_id, met.location, strict=True)
        if loc.split(",")[0] in named[a]
    ]
    assert via_summary

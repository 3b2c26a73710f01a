"""The candidate join: no cross product in the plan, and most truly good pairs survive it."""

import dataclasses

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


def test_a_skill_written_another_way_still_meets_its_family_and_a_named_city(spark):
    """Exact skill keys miss "k8s" / "Kubernetes"; the title family key does not. A city the
    summary names (a move, a relocation) is a location key too."""
    members = spark.createDataFrame(
        [
            (
                "m1",
                "SRE at Acme",
                "Now in Madrid.",
                "k8s, Terraform",
                "senior",
                "Berlin, DE",
                "hybrid",
                "DE",
            ),
            (
                "m2",
                "Registered Nurse at Umbrella Health",
                "",
                "BLS",
                "mid",
                "Berlin, DE",
                "remote",
                "DE",
            ),
        ],  # fmt: skip
        "member_id string, headline string, summary string, skills string, seniority string, "
        "location string, remote_preference string, work_authorization string",
    )
    jobs = spark.createDataFrame(
        [
            ("j1", "Site Reliability Engineer", "Kubernetes", "senior", "Berlin, DE", "onsite"),
            ("j2", "DevOps Engineer", "Kubernetes", "senior", "Madrid, ES", "hybrid"),
            ("j3", "Backend Engineer", "Java", "senior", "Paris, FR", "onsite"),
            ("j4", "Staff Nurse", "Triage", "mid", "Berlin, DE", "onsite"),
        ],
        "job_id string, title string, skills string, seniority string, location string, "
        "workplace_type string",
    )
    pairs = candidate_pairs(members, jobs, DEFAULTS.candidates).toPandas()
    got = set(zip(pairs.member_id, pairs.job_id, strict=True))
    assert got == {("m1", "j1"), ("m1", "j2")}  # no shared skill string, same family
    # (m2 wants remote only: the on-site nurse post in Berlin is not formed)
    shared = pairs.set_index("job_id").prefilter_score
    assert shared["j1"] == shared["j2"] == pytest.approx(0.3)  # no skill key shared: fit only

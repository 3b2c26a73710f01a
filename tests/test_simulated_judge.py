"""The simulated LLM judge (sim/judge.py) errs on the text, systematically, and its error scale is
tuned to a target kappa: Spark-free, on the seed-7 world."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from jobs.quality.metrics import linear_weighted_kappa
from sim import lexicon, world
from sim.judge import JudgeProfile, SimulatedJudge, tune_profile

QUIET = JudgeProfile(
    alias_miss=0.0,
    prose_miss=0.0,
    field_trust=0.0,
    title_trust=0.0,
    stuffing_sway=0.0,
    injection_sway=0.0,
    noise=0.0,
    borderline_bias=0.0,
    seed=3,
)


@pytest.fixture(scope="module")
def pairs():
    """150 members against 40 jobs: truth, and the id frames the judge grades."""
    members = world.member_latents(7, 0, 150)
    jobs = world.job_latents(7, 0, 40)
    mi = np.repeat(np.arange(len(members)), len(jobs))
    ji = np.tile(np.arange(len(jobs)), len(members))
    m, j = members.iloc[mi].reset_index(drop=True), jobs.iloc[ji].reset_index(drop=True)
    truth = pd.concat([members, jobs], ignore_index=True)
    ids = (m[["entity_id"]].rename(columns={"entity_id": "member_id"}),
           j[["entity_id"]].rename(columns={"entity_id": "job_id"}))  # fmt: skip
    return truth, m, j, ids


def _grades(truth, ids, profile):
    return SimulatedJudge(truth, profile).grade_rows(*ids).grade


def test_an_error_free_reading_is_the_policy(pairs):
    truth, m, j, ids = pairs
    agree = _grades(truth, ids, QUIET) == world.true_grade(m, j)
    assert agree.mean() > 0.99  # argmax vs round-half-even at exact halves only


def test_an_alias_is_missed_on_every_pair_that_uses_it(pairs):
    truth, m, j, ids = pairs
    judge = SimulatedJudge(truth, dataclasses.replace(QUIET, alias_miss=0.5))
    forms = {f for fs in truth.skill_forms for f in fs} - set(lexicon.ALL_SKILLS)
    aliases = forms - judge.known_forms  # the aliases it never links to their skill
    assert 0.3 < len(aliases) / len(forms) < 0.7
    exact = SimulatedJudge(truth, QUIET).grade_rows(*ids).grade  # the error-free reading
    wrong = judge.grade_rows(*ids).grade != exact
    assert wrong.any()

    # only pairs where a required skill's member or job form is an alias it does not know
    def missed_alias(member, job) -> bool:
        form = dict(zip(member.skills, member.skill_forms, strict=True))
        return any(
            s in form and (form[s] in aliases or job_form in aliases)
            for s, job_form in zip(job.skills, job.skill_forms, strict=True)
        )

    uses_missed = np.array(
        [missed_alias(a, b) for a, b in zip(m.itertuples(), j.itertuples(), strict=True)]
    )
    assert not (wrong & ~uses_missed).any()
    # and it never credits more than the truth: a missed alias only lowers coverage
    assert (judge.grade_rows(*ids).grade <= exact)[uses_missed].all()


def test_a_stale_field_is_believed_for_a_profile_on_all_its_pairs(pairs):
    truth, m, j, ids = pairs
    judge = SimulatedJudge(truth, dataclasses.replace(QUIET, field_trust=1.0))
    # the same facts, but the stale fields' versions: what a reader who believes them sees
    fields = {"seniority_level": "declared_level", "region": "declared_region"}
    fields["workplace"] = "declared_workplace"
    believed = truth.assign(**{fact: truth[field] for fact, field in fields.items()})
    read = judge.grade_rows(*ids).grade
    np.testing.assert_array_equal(read, SimulatedJudge(believed, QUIET).grade_rows(*ids).grade)
    stale = np.zeros(len(m), dtype=bool)
    for fact, field in fields.items():
        stale |= (m[fact] != m[field]).to_numpy()
    assert (read != SimulatedJudge(truth, QUIET).grade_rows(*ids).grade)[stale].any()


def test_grades_do_not_depend_on_batch_or_order(pairs):
    truth, _, _, (members, jobs) = pairs
    judge = SimulatedJudge(truth, JudgeProfile(seed=5))
    whole = judge.grade_rows(members, jobs).probs
    order = np.random.default_rng(0).permutation(len(members))[:500]
    part = judge.grade_rows(members.iloc[order], jobs.iloc[order]).probs
    np.testing.assert_array_equal(part, whole[order])


def test_the_scale_is_tuned_to_the_target_kappa(pairs):
    truth, m, j, ids = pairs
    gold = world.true_grade(m, j).astype(int)
    # (Mostly random pairs: many score exactly 0.5, which the policy rounds to 0 and any noise
    # splits; kappa drops from ~1.0 at scale 0 to ~0.72 at the smallest scale, so the target
    # here is below that.)
    profile, kappa = tune_profile(truth, *ids, gold, JudgeProfile(seed=5), 0.6)
    assert kappa == pytest.approx(0.6, abs=0.02) and profile.scale > 0
    judged = SimulatedJudge(truth, profile).grade_rows(*ids).grade
    assert linear_weighted_kappa(gold, judged) == pytest.approx(kappa)
    unreachable, best = tune_profile(truth, *ids, gold, JudgeProfile(seed=5), 1.01)
    assert unreachable.scale == 0.0 and best < 1.01

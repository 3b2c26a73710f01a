"""A day of churn (sim/churn.py, docs/world.md): the planned changes have the configured sizes,
are the same on a rerun of a day and differ across days, never reuse or collide with an id, edit
only ids a MERGE can match once, and keep the truth in step with the text; applied by Delta DML,
they are exactly what changes in the tables, once per day (tests/test_incremental.py, on
Delta)."""

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from jobs.config.settings import load_settings
from jobs.runtime.errors import PolicyrankError
from sim import churn, render, world

DAY = dt.date(2026, 12, 2)


def _conf(*overrides: str):
    return load_settings(None, ["world.members=2000", "world.jobs=600", *overrides]).world


def _world(conf) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """members, jobs and truth as `policyrank generate` writes them, in pandas."""
    members, jobs, truth = [], [], []
    for total, make, draw, out in (
        (conf.members, world.member_latents, render.render_members, members),
        (conf.jobs, world.job_latents, render.render_jobs, jobs),
    ):
        for c in range(math.ceil(total / world.CHUNK)):
            facts = make(conf.seed, c, total)
            truth.append(facts)
            out.append(
                draw(facts, conf.seed, c, conf.bad_row_share, injection_share=conf.injection_share)
            )
    return tuple(pd.concat(f, ignore_index=True) for f in (members, jobs, truth))


@pytest.fixture(scope="module")
def conf():
    return _conf("world.bad_row_share=0.05")


@pytest.fixture(scope="module")
def tables(conf):
    return _world(conf)


@pytest.fixture(scope="module")
def plan(tables, conf):
    return churn.plan_churn(*tables, conf, DAY)


def test_shares_of_the_current_rows(plan, tables, conf):
    members, jobs, _ = tables
    shares = conf.churn
    assert plan.counts() == {
        "members_edited": round(shares.edited_members_share * len(members)),
        "members_new": round(shares.new_members_share * len(members)),
        "members_deleted": round(shares.deleted_members_share * len(members)),
        "jobs_new": round(shares.new_jobs_share * len(jobs)),
        "jobs_closed": round(shares.closed_jobs_share * len(jobs)),
    }
    assert plan.counts()["members_deleted"] > 0 and plan.counts()["jobs_closed"] > 0
    assert sum(plan.edit_kinds.values()) == len(plan.edited_members)
    assert all(n > 0 for n in plan.edit_kinds.values()), plan.edit_kinds


def test_a_day_is_the_same_on_a_rerun_and_another_day_differs(plan, tables, conf):
    again = churn.plan_churn(*tables, conf, DAY)
    for field in ("edited_members", "new_members", "new_jobs", "truth_upserts"):
        pd.testing.assert_frame_equal(getattr(plan, field), getattr(again, field))
    assert (again.deleted_members, again.closed_jobs) == (plan.deleted_members, plan.closed_jobs)
    other = churn.plan_churn(*tables, conf, DAY + dt.timedelta(days=1))
    assert set(other.edited_members.member_id) != set(plan.edited_members.member_id)
    assert other.deleted_members != plan.deleted_members
    assert other.closed_jobs != plan.closed_jobs
    # the same fresh ids (the world did not move on), other people and posts behind them
    assert list(other.new_members.summary) != list(plan.new_members.summary)
    assert list(other.new_jobs.description) != list(plan.new_jobs.description)


def test_new_ids_are_fresh_and_continue_after_the_largest(plan, tables):
    members, jobs, truth = tables
    new_facts = plan.truth_upserts[~plan.truth_upserts.entity_id.isin(truth.entity_id)]
    new_ids = list(new_facts.entity_id)
    assert len(new_ids) == len(set(new_ids)) == len(plan.new_members) + len(plan.new_jobs)
    member_ids = [i for i in new_ids if i.startswith("m")]
    assert member_ids[0] == "m0002000"
    assert [i for i in new_ids if i.startswith("j")][0] == "j000600"
    # the rendered rows: ids unseen before (a few are null or doubled, as bad rows are)
    rendered = set(plan.new_members.member_id.dropna()) | set(plan.new_jobs.job_id.dropna())
    assert rendered <= set(new_ids)
    assert not rendered & (set(members.member_id) | set(jobs.job_id) | set(truth.entity_id))


def test_the_largest_id_is_never_deleted_so_no_id_comes_back(tables, conf):
    everyone = dataclasses.replace(
        conf, churn=dataclasses.replace(conf.churn, deleted_members_share=1.0)
    )
    members, jobs, truth = tables
    plan = churn.plan_churn(members, jobs, truth, everyone, DAY)
    assert "m0001999" not in plan.deleted_members  # the largest id, in truth at least
    assert len(plan.deleted_members) > 1500
    after = plan.truth_after(truth), plan.members_after(members), plan.jobs_after(jobs)
    nxt = churn.plan_churn(after[1], after[2], after[0], conf, DAY + dt.timedelta(days=1))
    first_new = nxt.truth_upserts.entity_id[nxt.truth_upserts.entity == "member"]
    assert min(i for i in first_new if i not in set(after[0].entity_id)) == "m0002020"


def test_only_unique_ids_are_edited_or_deleted(plan, tables):
    members, jobs, truth = tables
    counts = members.member_id.value_counts()
    doubled = set(counts.index[counts > 1])
    assert doubled, "the world should hold duplicated ids (bad rows)"
    touched = set(plan.edited_members.member_id) | set(plan.deleted_members)
    assert not touched & doubled and None not in touched
    assert not set(plan.edited_members.member_id) & set(plan.deleted_members)
    job_counts = jobs.job_id.value_counts()
    assert set(plan.closed_jobs) <= set(job_counts.index[job_counts == 1])


def test_edited_rows_keep_their_ids_and_change(plan, tables):
    members, _, truth = tables
    before = members.set_index("member_id").loc[plan.edited_members.member_id]
    after = plan.edited_members.set_index("member_id")
    assert list(after.index) == list(before.index)
    changed = (before.fillna("") != after.fillna("")).any(axis=1)
    assert changed.all()
    facts = truth.set_index("entity_id")
    old = facts.loc[after.index]
    new = plan.truth_upserts.set_index("entity_id").loc[after.index]
    assert (new.seniority_level >= old.seniority_level).all()
    assert (new.skills.map(len) >= old.skills.map(len)).all()
    moved = new.region != old.region
    assert moved.any() and (new.seniority_level > old.seniority_level).any()
    assert all(c in a for c, a in zip(new.country, new.work_authorization, strict=True))
    assert (new.declared_region[moved] == new.region[moved]).all()
    years = new.years.to_numpy()
    low = np.array([world.LEVEL_YEARS[lv][0] for lv in new.seniority_level])
    assert (years >= low).all()


def test_deleted_and_closed_ids_are_gone_and_truth_follows(plan, tables):
    members, jobs, truth = tables
    m, j, t = plan.members_after(members), plan.jobs_after(jobs), plan.truth_after(truth)
    assert not set(plan.deleted_members) & set(m.member_id)
    assert not set(plan.closed_jobs) & set(j.job_id)
    assert not set(plan.truth_deletes) & set(t.entity_id)
    assert len(m) == len(members) - len(plan.deleted_members) + len(plan.new_members)
    assert len(j) == len(jobs) - len(plan.closed_jobs) + len(plan.new_jobs)
    assert t.entity_id.is_unique and list(t.columns) == world.LATENT_COLUMNS
    assert (m.member_id.value_counts()[plan.edited_members.member_id] == 1).all()
    # every id in the tables has its facts, and the new members' true grades can be computed
    assert set(m.member_id.dropna()) | set(j.job_id.dropna()) <= set(t.entity_id)
    facts = t.set_index("entity_id")
    new = facts.loc[plan.new_members.member_id.dropna()]
    some_jobs = facts.loc[j.job_id.dropna().iloc[: len(new)]]
    grades = world.true_grade(new.reset_index(), some_jobs.reset_index())
    assert len(grades) == len(new) and set(grades) <= {0, 1, 2, 3, 4}
    edited = facts.loc[plan.edited_members.member_id]
    assert (edited.family == [world.OCCUPATIONS[o][0] for o in edited.occupation]).all()


def test_a_share_outside_0_1_is_refused(tables, conf):
    bad = dataclasses.replace(conf, churn=dataclasses.replace(conf.churn, new_jobs_share=1.5))
    with pytest.raises(PolicyrankError, match="world.churn.new_jobs_share"):
        churn.plan_churn(*tables, bad, DAY)

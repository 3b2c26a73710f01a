import numpy as np
import pandas as pd

from sim import world


def _latents(**overrides):
    base = dict(
        entity="member",
        entity_id="m",
        occupation="data_engineer",
        family="data",
        seniority_level=2,
        region="Berlin",
        country="DE",
        workplace="hybrid",
        skills=["Spark", "SQL", "Python"],
        work_authorization=["DE"],
        visa_sponsorship=False,
    )
    base.update(overrides)
    return pd.DataFrame([base])


def _job(**overrides):
    return _latents(entity="job", entity_id="j", work_authorization=[], **overrides)


def test_generation_is_deterministic_per_chunk():
    a = world.member_latents(7, 1, 5000)
    b = world.member_latents(7, 1, 5000)
    pd.testing.assert_frame_equal(a, b)
    assert not world.member_latents(8, 1, 5000).equals(a)
    assert a.entity_id.iloc[0] == f"m{world.CHUNK:07d}"


def test_last_chunk_stops_at_total():
    assert len(world.job_latents(7, 0, 50)) == 50


def test_perfect_match_is_grade_4():
    assert world.true_grade(_latents(), _job()).tolist() == [4]


def test_policy_caps():
    other_family = _job(occupation="registered_nurse", family="health")
    assert world.true_grade(_latents(), other_family)[0] <= 1
    far_away = _job(region="Paris", country="FR", visa_sponsorship=True)
    assert world.true_grade(_latents(), far_away)[0] <= 1
    no_visa = _job(region="London", country="GB", workplace="remote")
    assert world.true_grade(_latents(), no_visa)[0] <= 1
    sponsored = _job(region="London", country="GB", workplace="remote", visa_sponsorship=True)
    assert world.true_grade(_latents(), sponsored)[0] == 4
    two_levels_up = _job(seniority_level=4)
    assert world.true_grade(_latents(), two_levels_up)[0] <= 2
    remote_only = _latents(workplace="remote")
    assert world.true_grade(remote_only, _job(workplace="onsite"))[0] <= 1


def test_bad_rows_are_injected_at_about_the_share():
    latent = pd.concat([world.member_latents(7, c, 4 * world.CHUNK) for c in range(4)])
    rendered = world.render_members(latent, 7, 0, 0.1)
    clean = world.render_members(latent, 7, 0, 0.0)
    changed = (rendered.astype(str) != clean.astype(str)).any(axis=1).mean()
    assert 0.05 < changed < 0.12  # odd_unicode/duplicate on row 0 may leave a row unchanged
    assert rendered.member_id.isna().any()
    assert rendered.member_id.duplicated().any()
    assert (rendered.seniority == "wizard").any()
    assert rendered.summary.str.len().max() > 20000


def test_grades_are_mostly_low_but_every_grade_occurs():
    m = pd.concat([world.member_latents(7, c, 600) for c in range(1)])
    j = world.job_latents(7, 0, 300)
    mi, ji = np.repeat(np.arange(len(m)), len(j)), np.tile(np.arange(len(j)), len(m))
    counts = np.bincount(world.true_grade(m.iloc[mi], j.iloc[ji]), minlength=5)
    assert counts.argmax() == 0 and (counts > 0).all()

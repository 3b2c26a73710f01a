import numpy as np
import pandas as pd
import pytest

from jobs.quality.metrics import confusion_matrix, linear_weighted_kappa
from jobs.runtime.errors import PolicyrankError
from sim import render, world
from sim.raters import RATER_LEAN, rate_pairs, rater_bias


@pytest.fixture(scope="module")
def pairs():
    """6,000 (member, job) pairs of the seed-7 world, with every grade represented."""
    m = world.member_latents(7, 0, 60)
    j = world.job_latents(7, 0, 100)
    mi, ji = np.repeat(np.arange(len(m)), len(j)), np.tile(np.arange(len(j)), len(m))
    members, jobs = m.iloc[mi].reset_index(drop=True), j.iloc[ji].reset_index(drop=True)
    keys = [f"{a}|{b}" for a, b in zip(members.entity_id, jobs.entity_id, strict=True)]
    return members, jobs, keys


def _rate(pairs, **kw):
    members, jobs, keys = pairs
    args = dict(n_raters=3, noise=0.1, disagreement=0.1, seed=11) | kw
    return rate_pairs(members, jobs, keys, **args)


def _grades(frame: pd.DataFrame) -> np.ndarray:
    return np.array(frame.rater_grades.tolist())


def test_columns_and_types(pairs):
    out = _rate(pairs)
    assert list(out.columns) == [
        "pair_key",
        "rater_grades",
        "gold_grade",
        "true_grade",
        "rater_agreement",
    ]
    assert len(out) == len(pairs[2]) and out.pair_key.tolist() == pairs[2]
    assert all(len(g) == 3 and all(isinstance(x, int) for x in g) for g in out.rater_grades)
    assert _grades(out).min() >= 0 and _grades(out).max() <= 4
    assert out.rater_agreement.between(1 / 3, 1).all()


def test_deterministic_and_independent_of_order_and_batching(pairs):
    members, jobs, keys = pairs
    a, b = _rate(pairs), _rate(pairs)
    pd.testing.assert_frame_equal(a, b)
    order = np.random.default_rng(0).permutation(len(keys))[:500]
    part = rate_pairs(
        members.iloc[order],
        jobs.iloc[order],
        [keys[i] for i in order],
        n_raters=3,
        noise=0.1,
        disagreement=0.1,
        seed=11,
    )
    pd.testing.assert_frame_equal(part, a.iloc[order].reset_index(drop=True))
    assert not _rate(pairs, seed=12).rater_grades.equals(a.rater_grades)


def test_no_noise_no_disagreement_reproduces_the_true_grade(pairs):
    members, jobs, _ = pairs
    out = _rate(pairs, noise=0.0, disagreement=0.0, n_raters=4)
    true = world.true_grade(members, jobs)
    assert (_grades(out) == true[:, None]).all()
    assert (out.gold_grade.to_numpy() == true).all() and (out.true_grade.to_numpy() == true).all()
    assert (out.rater_agreement == 1.0).all()
    assert set(np.unique(true)) == {0, 1, 2, 3, 4}  # the fixture exercises every grade


def test_noise_raises_disagreement_between_raters(pairs):
    agreement = [
        _rate(pairs, noise=p, disagreement=0.0).rater_agreement.mean() for p in (0, 0.1, 0.3)
    ]
    assert agreement[0] == 1.0 > agreement[1] > agreement[2]
    out = _rate(pairs, noise=0.3, disagreement=0.0)
    moved = (_grades(out) != out.true_grade.to_numpy()[:, None]).mean()
    # a move is lost to clipping half the time at grades 0 and 4, which are most pairs
    assert 0.1 < moved < 0.3
    assert (np.abs(_grades(out) - out.true_grade.to_numpy()[:, None]) <= 1).all()


def test_lenient_and_strict_raters_move_only_pairs_near_a_grade_boundary(pairs):
    members, jobs, keys = pairs
    out = _rate(pairs, noise=0.0, disagreement=1.0, n_raters=5)
    true, grades = out.true_grade.to_numpy(), _grades(out)
    changed = grades != true[:, None]
    assert changed.any()
    parts = world.grade_parts(members, jobs)
    score = world.weighted_grade(parts)
    # a lean of RATER_LEAN only crosses a rounding boundary that close to the score
    distance = np.abs(score - (np.floor(score) + 0.5))
    assert (distance[changed.any(axis=1)] <= RATER_LEAN + 1e-9).all()
    assert (np.abs(grades - true[:, None]) <= 1).all()


def test_a_rater_leans_the_same_way_on_every_pair():
    lean = rater_bias(24, 0.5, seed=11)
    assert set(np.unique(lean)) <= {-RATER_LEAN, 0.0, RATER_LEAN}
    assert (lean > 0).any() and (lean < 0).any() and (lean == 0).any()
    np.testing.assert_array_equal(lean, rater_bias(24, 0.5, seed=11))
    assert (rater_bias(24, 0.0, seed=11) == 0).all()


def test_panels_are_distinct_raters_and_biased_raters_shift_gold(pairs):
    calm = _rate(pairs, noise=0.0, disagreement=0.0)
    split = _rate(pairs, noise=0.0, disagreement=1.0)
    assert (calm.gold_grade == calm.true_grade).all()
    assert (split.gold_grade != split.true_grade).any()  # two leaning raters move the median


def test_gold_is_the_median_and_even_ties_go_down(pairs):
    odd = _rate(pairs, noise=0.4, n_raters=5)
    assert (odd.gold_grade.to_numpy() == np.median(_grades(odd), axis=1)).all()
    even = _rate(pairs, noise=0.4, n_raters=2)
    assert (even.gold_grade.to_numpy() == _grades(even).min(axis=1)).all()
    one = _rate(pairs, noise=0.4, n_raters=1)
    assert (one.gold_grade.to_numpy() == _grades(one)[:, 0]).all()


def test_bad_arguments_are_one_clear_line(pairs):
    members, jobs, keys = pairs
    with pytest.raises(PolicyrankError, match="one of each per pair"):
        rate_pairs(members, jobs, keys[:-1], n_raters=3, noise=0, disagreement=0, seed=0)
    with pytest.raises(PolicyrankError, match="noise must be a probability"):
        rate_pairs(members, jobs, keys, n_raters=3, noise=1.5, disagreement=0, seed=0)
    with pytest.raises(PolicyrankError, match="n_raters must be a positive integer"):
        rate_pairs(members, jobs, keys, n_raters=0, noise=0, disagreement=0, seed=0)
    with pytest.raises(PolicyrankError, match="needs a pool of as many"):
        rate_pairs(members, jobs, keys, n_raters=5, noise=0, disagreement=0, seed=0, pool=4)


def test_no_pairs_gives_an_empty_frame(pairs):
    members, jobs, _ = pairs
    out = rate_pairs(
        members.iloc[:0], jobs.iloc[:0], [], n_raters=3, noise=0, disagreement=0, seed=0
    )
    assert out.empty and "gold_grade" in out.columns


# ---------------------------------------------------------------- kappa and confusion


def test_kappa_identical_is_one():
    a = np.array([0, 1, 2, 3, 4, 4, 2, 0])
    assert linear_weighted_kappa(a, a) == pytest.approx(1.0)
    assert linear_weighted_kappa([2, 2, 2], [2, 2, 2]) == 1.0
    assert np.isnan(linear_weighted_kappa([], []))


def test_kappa_hand_computed():
    # weights |i-j|/2; observed weighted disagreement (0 + .5 + 0 + .5)/4 = .25;
    # marginals (1/4, 1/4, 1/2) on both sides give expected weighted disagreement 7/16
    assert linear_weighted_kappa([0, 1, 2, 2], [0, 2, 2, 1], n_classes=3) == pytest.approx(3 / 7)
    # total disagreement on the two extremes: observed 1, expected 1/2 -> kappa -1
    assert linear_weighted_kappa([0, 4], [4, 0]) == pytest.approx(-1.0)


def test_kappa_chance_level_is_near_zero():
    rng = np.random.default_rng(3)
    a, b = rng.integers(5, size=20000), rng.integers(5, size=20000)
    assert abs(linear_weighted_kappa(a, b)) < 0.03


def test_confusion_matrix_by_hand():
    got = confusion_matrix([0, 1, 2, 2, 4, 4], [0, 2, 2, 1, 4, 3])
    want = np.zeros((5, 5), dtype=int)
    for i, j in [(0, 0), (1, 2), (2, 2), (2, 1), (4, 4), (4, 3)]:
        want[i, j] += 1
    np.testing.assert_array_equal(got, want)
    assert confusion_matrix([1, 0], [1, 1], n_classes=2).tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError, match="0..4"):
        confusion_matrix([5], [0])
    with pytest.raises(ValueError, match="vs"):
        confusion_matrix([0, 1], [0])


# ---------------------------------------------------------------- planted prompt injections


def _four_chunks(entity):
    make = world.member_latents if entity == "member" else world.job_latents
    return pd.concat([make(7, c, 4 * world.CHUNK) for c in range(4)], ignore_index=True)


@pytest.mark.parametrize(
    ("draw", "entity", "column"),
    [(render.render_members, "member", "summary"), (render.render_jobs, "job", "description")],
)
def test_injections_are_planted_at_about_the_share(draw, entity, column):
    latent = _four_chunks(entity)
    clean = draw(latent, 7, 0, 0.0)
    planted = draw(latent, 7, 0, 0.0, injection_share=0.1)
    hit = planted[column].map(render.has_injection)
    assert 0.08 < hit.mean() < 0.12
    assert not clean[column].map(render.has_injection).any()
    # only the free-text column of the planted rows changes, and it keeps the original text
    other = [c for c in clean.columns if c != column]
    pd.testing.assert_frame_equal(planted[other], clean[other])
    assert (planted.loc[~hit, column] == clean.loc[~hit, column]).all()
    assert all(
        c in p for c, p in zip(clean.loc[hit, column], planted.loc[hit, column], strict=True)
    )


def test_seed_7_members_and_jobs_are_unchanged_without_injections():
    for chunk in range(2):
        members = world.member_latents(7, chunk, 2 * world.CHUNK)
        pd.testing.assert_frame_equal(
            render.render_members(members, 7, chunk, 0.02, injection_share=0.0),
            render.render_members(members, 7, chunk, 0.02),
        )
        jobs = world.job_latents(7, chunk, 2 * world.CHUNK)
        pd.testing.assert_frame_equal(
            render.render_jobs(jobs, 7, chunk, 0.02, injection_share=0.0),
            render.render_jobs(jobs, 7, chunk, 0.02),
        )


def test_injection_uses_its_own_rng_stream():
    members = world.member_latents(7, 0, world.CHUNK)
    with_bad = render.render_members(members, 7, 0, 0.05, injection_share=0.05)
    without = render.render_members(members, 7, 0, 0.05)
    hit = with_bad.summary.map(render.has_injection)
    assert hit.any()
    # bad rows land on the same rows whatever the injection share
    pd.testing.assert_frame_equal(
        with_bad.drop(columns="summary").astype(str), without.drop(columns="summary").astype(str)
    )


def test_every_injection_text_is_found_and_clean_text_is_not():
    for text in render.MEMBER_INJECTIONS + render.JOB_INJECTIONS:
        assert render.has_injection(text) and render.has_injection(f"x {text.upper()} y")
    assert not render.has_injection(None)
    assert not render.has_injection("Tyrell Systems is hiring a senior data engineer.")

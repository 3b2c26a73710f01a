"""Synthetic gold labels: a panel of simulated human raters grading (member, job) pairs.

Pure pandas/numpy. Every random choice is a hash of ``(seed, pair key, rater slot, purpose)``, never
a draw from a shared stream, so a pair gets the same grades whatever else is rated with it, in
whatever order or batching. The agreement statistics (weighted kappa, confusion) are production
code and live in :mod:`jobs.quality.metrics`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from jobs.runtime.errors import PolicyrankError
from sim import world

N_GRADES = 5
RATER_COLUMNS = ["pair_key", "rater_grades", "gold_grade", "true_grade", "rater_agreement"]
_DTYPES = {
    "pair_key": object,
    "rater_grades": object,
    "gold_grade": "int8",
    "true_grade": "int8",
    "rater_agreement": "float64",
}

# Hash purposes, one per independent decision.
_PANEL, _NOISY, _UP = range(3)
_TRAIT, _LENIENT = 0, 1
RATER_LEAN = 0.35  # how far a lenient (strict) rater moves the policy's score before rounding


def rater_bias(pool: int, disagreement: float, seed: int) -> np.ndarray:
    """Each pool rater's fixed lean: ``+RATER_LEAN`` (lenient), ``-RATER_LEAN`` (strict) or 0.

    A share ``disagreement`` of the pool is biased, half lenient and half strict on average; a
    rater's trait is a hash of (seed, rater), so it is the same on every pair they grade."""
    base = _hash64([f"rater-{k}" for k in range(pool)], seed, "trait")
    biased = _uniform(base, 0, _TRAIT) < disagreement
    lenient = _uniform(base, 0, _LENIENT) < 0.5
    return np.where(biased, np.where(lenient, RATER_LEAN, -RATER_LEAN), 0.0)


def rate_pairs(
    member_latents: pd.DataFrame,
    job_latents: pd.DataFrame,
    pair_keys: Sequence[str],
    *,
    n_raters: int,
    noise: float,
    disagreement: float,
    seed: int,
    pool: int = 24,
) -> pd.DataFrame:
    """Simulated rater grades, the gold grade and the true grade of each pair.

    Row ``i`` of ``member_latents`` and of ``job_latents`` (``truth`` rows, as for
    :func:`sim.world.true_grade`) form the pair ``pair_keys[i]``; the key only seeds the hashes.

    The rater model (docs/world.md), for pair ``p``; each ``U`` below is an independent uniform
    in [0, 1) hashed from ``(seed, p, slot, purpose)``:

    1. A panel of ``n_raters`` distinct raters is drawn from a pool of ``pool`` by a hash of
       ``p``. A share ``disagreement`` of the pool leans (:func:`rater_bias`), always the same
       way: a lenient rater adds ``RATER_LEAN`` to the policy's weighted score before rounding, a
       strict one subtracts it, so only pairs near a grade boundary change.
    2. The rater applies the policy's rounding and caps to that score
       (:func:`sim.world.apply_caps`): with no lean, exactly the true grade.
    3. With probability ``noise`` (``U_noisy < noise``) the grade slips by one, up or down with
       equal probability, then is clipped to 0..4.

    Returns one row per pair, in input order: ``pair_key``; ``rater_grades`` (list of
    ``n_raters`` ints); ``gold_grade`` (int8), the median rater grade, where for an even panel the
    lower of the two middle grades is taken (a tie goes to the more conservative grade; a strict
    majority is always the median); ``true_grade`` (int8); ``rater_agreement`` (float), the share
    of raters whose grade equals the gold grade.
    """
    keys = [str(k) for k in pair_keys]
    if not len(member_latents) == len(job_latents) == len(keys):
        raise PolicyrankError(
            f"rate_pairs: {len(member_latents)} member rows, {len(job_latents)} job rows and "
            f"{len(keys)} pair keys; one of each per pair is needed"
        )
    for name, value in (("n_raters", n_raters), ("pool", pool)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise PolicyrankError(f"rate_pairs: {name} must be a positive integer, got {value!r}")
    if n_raters > pool:
        raise PolicyrankError(f"rate_pairs: a panel of {n_raters} needs a pool of as many raters")
    for name, p in (("noise", noise), ("disagreement", disagreement)):
        if not 0.0 <= float(p) <= 1.0:
            raise PolicyrankError(f"rate_pairs: {name} must be a probability in [0, 1], got {p!r}")
    if not keys:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in RATER_COLUMNS})

    parts = world.grade_parts(member_latents, job_latents)
    score = world.weighted_grade(parts)
    true = world.apply_caps(np.rint(score), parts).astype(np.int64)
    lean = rater_bias(pool, disagreement, seed)
    base = _hash64(keys, seed, "rater")
    # n distinct raters: a start and a step coprime with the pool walk the pool without repeats.
    start = (base % np.uint64(pool)).astype(np.int64)
    step = _coprime_step(pool)
    grades = np.empty((len(keys), n_raters), dtype=np.int64)
    for r in range(n_raters):
        rater = (start + r * step) % pool
        g = world.apply_caps(np.rint(score + lean[rater]), parts).astype(np.int64)
        moved = _uniform(base, r, _NOISY) < noise
        up = np.where(_uniform(base, r, _UP) < 0.5, 1, -1)
        grades[:, r] = np.clip(np.where(moved, g + up, g), 0, N_GRADES - 1)

    gold = np.sort(grades, axis=1)[:, (n_raters - 1) // 2]
    return pd.DataFrame(
        {
            "pair_key": keys,
            "rater_grades": [list(map(int, row)) for row in grades],
            "gold_grade": gold.astype("int8"),
            "true_grade": true.astype("int8"),
            "rater_agreement": (grades == gold[:, None]).mean(axis=1),
        }
    )


def _coprime_step(pool: int) -> int:
    """The smallest step >= pool // 3 + 1 coprime with ``pool`` (1 for a pool of 1 or 2)."""
    step = max(1, pool // 3 + 1)
    while math.gcd(step, pool) != 1:
        step += 1
    return step


# ---------------------------------------------------------------- hashing


def _hash64(keys: Sequence[str], seed: int, salt: str) -> np.ndarray:
    """A 64-bit BLAKE2b hash of ``(salt, seed, key)`` per key, as uint64."""
    prefix = f"{salt}\x1f{int(seed)}\x1f".encode()
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(prefix + k.encode(), digest_size=8).digest(), "little")
            for k in keys
        ),
        dtype=np.uint64,
        count=len(keys),
    )


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _uniform(base: np.ndarray, slot: int, purpose: int) -> np.ndarray:
    """Uniforms in [0, 1) from ``base`` hashes, one independent stream per (slot, purpose):
    splitmix64 of ``base + stream * golden``, top 53 bits."""
    stream = np.uint64(slot * 16 + purpose + 1)
    with np.errstate(over="ignore"):
        z = base + stream * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

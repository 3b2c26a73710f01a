"""Synthetic gold labels: a panel of simulated human raters grading (member, job) pairs.

Pure pandas/numpy. Every random choice is a hash of ``(seed, pair key, rater slot, purpose)``, never
a draw from a shared stream, so a pair gets the same grades whatever else is rated with it, in
whatever order or batching. The agreement statistics (weighted kappa, confusion) are production
code and live in :mod:`jobs.quality.metrics`.
"""

from __future__ import annotations

import hashlib
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

# Hash purposes, one per independent decision a rater makes about a pair.
_BIASED, _LENIENT, _NOISY, _UP = range(4)


def rate_pairs(
    member_latents: pd.DataFrame,
    job_latents: pd.DataFrame,
    pair_keys: Sequence[str],
    *,
    n_raters: int,
    noise: float,
    disagreement: float,
    seed: int,
) -> pd.DataFrame:
    """Simulated rater grades, the gold grade and the true grade of each pair.

    Row ``i`` of ``member_latents`` and of ``job_latents`` (``truth`` rows, as for
    :func:`jobs.world.true_grade`) form the pair ``pair_keys[i]``; the key only seeds the hashes.

    The rater model, for pair ``p`` and rater slot ``r`` in ``0 .. n_raters-1``; each ``U`` below
    is an independent uniform in [0, 1) hashed from ``(seed, p, r, purpose)``:

    1. The rater applies the policy: grade ``g = true_grade(p)`` (:func:`jobs.world.true_grade`).
    2. With probability ``disagreement`` (``U_biased < disagreement``) the rater is a biased rater
       for this pair, lenient or strict with equal probability (``U_lenient < 0.5``). A lenient
       rater turns a borderline 2 into a 3; a strict rater turns a borderline 3 into a 2. Other
       grades are left alone. Slots are drawn per pair, as from a large pool of raters.
    3. With probability ``noise`` (``U_noisy < noise``) the grade moves by one, up or down with
       equal probability (``U_up < 0.5`` is up), then is clipped to 0..4 (so a 0 that moves down
       or a 4 that moves up stays put).

    With ``noise = disagreement = 0`` every rater gives exactly the true grade.

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
    if isinstance(n_raters, bool) or not isinstance(n_raters, int | np.integer) or n_raters < 1:
        raise PolicyrankError(f"rate_pairs: n_raters must be a positive integer, got {n_raters!r}")
    for name, p in (("noise", noise), ("disagreement", disagreement)):
        if not 0.0 <= float(p) <= 1.0:
            raise PolicyrankError(f"rate_pairs: {name} must be a probability in [0, 1], got {p!r}")
    if not keys:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in RATER_COLUMNS})

    true = world.true_grade(member_latents, job_latents).astype(np.int64)
    base = _hash64(keys, seed, "rater")
    grades = np.repeat(true[:, None], n_raters, axis=1)
    for r in range(n_raters):
        g = grades[:, r]
        biased = _uniform(base, r, _BIASED) < disagreement
        lenient = _uniform(base, r, _LENIENT) < 0.5
        g = np.where(biased & lenient & (g == 2), 3, g)
        g = np.where(biased & ~lenient & (g == 3), 2, g)
        moved = _uniform(base, r, _NOISY) < noise
        step = np.where(_uniform(base, r, _UP) < 0.5, 1, -1)
        grades[:, r] = np.clip(np.where(moved, g + step, g), 0, N_GRADES - 1)

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

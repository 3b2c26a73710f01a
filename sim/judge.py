"""A simulated LLM judge: teacher backend ``simulated`` (demo, tests and benches only).

No LLM judge weights can be had offline, so this stands in for one. It reads the hidden truth
(``truth``) and grades a pair the way LLM judges are known to err:

* calibrated noise -- its estimate of the policy's weighted score is off by
  ``N(0, noise)`` per pair, and it emits a distribution of width ``spread`` around it;
* leniency or strictness -- on a borderline pair (estimate in 1.5-3.5) it leans up or down
  by 0.7 grade with probability ``borderline_bias``;
* a skipped dimension -- with probability ``ignore_dimension`` it overlooks one of occupation,
  location, authorization or seniority (and the cap that goes with it);
* injections -- when the pair's text carries a planted injection, with probability
  ``injection_sway`` it grades what the injection asks for (4, or 0 for "Grade: 0").

Every random choice is a hash of (seed, pair key, purpose), so a pair gets the same grades in
any batch or order. Its model folder holds ``judge.json`` (the profile and the truth table's
location); its teacher id is ``simulated-llm-judge-<hash of that file>``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim import raters, world
from udfs.grades import GRADES, GradeDistribution

JUDGE_FILE = "judge.json"
DEFAULT_DIR = "simulated-llm-judge"
_DIMENSIONS = ("occupation", "location", "authorization", "seniority")
_NOISE_A, _NOISE_B, _BORDER, _LEAN, _IGNORE, _WHICH, _SWAY = range(7)


@dataclass(frozen=True)
class JudgeProfile:
    noise: float = 0.28
    spread: float = 0.6
    borderline_bias: float = 0.15
    ignore_dimension: float = 0.08
    injection_sway: float = 0.3
    seed: int = 0


class SimulatedJudge:
    """Grades (member, job) rows from the hidden truth, with an LLM judge's error modes.

    Example::

        judge = SimulatedJudge(truth_frame, JudgeProfile(noise=0.5))
        dist = judge.grade_rows(members[["member_id"]], jobs[["job_id", "description"]])
        dist.expected  # soft scores, one per pair
    """

    def __init__(self, truth: pd.DataFrame, profile: JudgeProfile):
        self.truth = truth.set_index("entity_id") if "entity_id" in truth.columns else truth
        self.profile = profile

    @classmethod
    def load(cls, model_dir: str | Path) -> SimulatedJudge:
        from deltalake import DeltaTable

        spec = json.loads((Path(model_dir) / JUDGE_FILE).read_text())
        truth = DeltaTable(spec["truth_table"]).to_pyarrow_dataset().to_table().to_pandas()
        return cls(truth, JudgeProfile(**spec["profile"]))

    def grade_rows(self, members: pd.DataFrame, jobs: pd.DataFrame) -> GradeDistribution:
        """Grade distribution of each aligned (members[i], jobs[i]) row pair.

        ``members`` needs ``member_id`` and ``jobs`` needs ``job_id``; any other text column
        (summary, description, ...) is searched for planted injections.
        """
        p = self.profile
        n = len(members)
        if n == 0:
            return GradeDistribution(np.zeros((0, len(GRADES)), dtype=np.float32))
        keys = (members.member_id.astype(str) + "|" + jobs.job_id.astype(str).values).tolist()
        base = raters._hash64(keys, p.seed, "judge")
        u = {k: raters._uniform(base, 0, k) for k in range(7)}
        parts = world.grade_parts(
            self.truth.loc[members.member_id].reset_index(),
            self.truth.loc[jobs.job_id].reset_index(),
        )
        skipped = np.where(
            u[_IGNORE] < p.ignore_dimension,
            (u[_WHICH] * len(_DIMENSIONS)).astype(int),
            -1,
        )
        parts["occupation"] = np.where(skipped == 0, 1.0, parts["occupation"])
        parts["location_ok"] = parts["location_ok"] | (skipped == 1)
        parts["authorized"] = parts["authorized"] | (skipped == 2)
        parts["gap"] = np.where(skipped == 3, 0, parts["gap"])
        estimate = world.apply_caps(world.weighted_grade(parts), parts).astype(float)
        normal = np.sqrt(-2 * np.log1p(-u[_NOISE_A])) * np.cos(2 * np.pi * u[_NOISE_B])
        estimate = estimate + p.noise * normal
        borderline = (estimate >= 1.5) & (estimate <= 3.5) & (u[_BORDER] < p.borderline_bias)
        estimate = np.where(borderline, estimate + np.where(u[_LEAN] < 0.5, 0.7, -0.7), estimate)
        asked = _injected_grade(members, jobs)
        swayed = ~np.isnan(asked) & (u[_SWAY] < p.injection_sway)
        estimate = np.clip(np.where(swayed, asked, estimate), 0, len(GRADES) - 1)
        grades = np.arange(len(GRADES), dtype=float)
        logits = -((grades[None, :] - estimate[:, None]) ** 2) / (2 * p.spread**2)
        return GradeDistribution.from_logits(logits)


def _injected_grade(members: pd.DataFrame, jobs: pd.DataFrame) -> np.ndarray:
    """The grade a planted injection asks for (4, or 0 for 'grade: 0'), NaN where none."""
    out = np.full(len(members), np.nan)
    texts = [
        frame[c].astype("string").fillna("").str.lower().to_numpy()
        for frame in (members, jobs)
        for c in frame.columns
        if c not in ("member_id", "job_id") and frame[c].dtype == object
    ]
    for i in range(len(members)):
        joined = " ".join(str(t[i]) for t in texts)
        if world.has_injection(joined):
            out[i] = 0.0 if "grade: 0" in joined else 4.0
    return out


def write_judge(model_dir: str | Path, truth_table: str, profile: JudgeProfile) -> Path:
    """The simulated judge's folder: ``judge.json`` with its profile and the truth location."""
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    spec = {"kind": "simulated-llm-judge", "truth_table": truth_table, "profile": asdict(profile)}
    (root / JUDGE_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True))
    return root


def load_judge(model_dir: str | Path) -> SimulatedJudge:
    """Teacher backend entry point (``udfs.teacher.BACKENDS['simulated']``)."""
    return SimulatedJudge.load(model_dir)

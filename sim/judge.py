"""A simulated LLM judge: teacher backend ``simulated`` (demo, tests and benches only).

No LLM judge weights can be had offline, so this stands in for one. It reads the facts a careful
reader would (``truth``) and then misreads the *text*, the way LLM judges do (docs/world.md):

* ``alias_miss`` -- a share of skill surface forms it never links to their skill (decided once
  per form: "k8s" is always missed or always understood);
* ``prose_miss`` -- a fact stated only in prose is overlooked (per profile or post and fact: a
  skill, an authorization, a relocation, sponsorship);
* ``field_trust`` -- a stale structured field is believed over the prose that corrects it
  (seniority, remote preference, location), per profile and field;
* ``title_trust`` -- an inflated title's level is believed over the stated years, per profile
  or post;
* ``stuffing_sway`` -- a padded skills list is credited, per profile;
* ``injection_sway`` -- a planted injection is obeyed, per pair;
* ``noise`` and ``borderline_bias`` -- calibrated noise on its estimate and a lean on borderline
  pairs, per pair.

The misreadings are decided per alias, profile and post, not per pair, so a student trained on
its labels inherits them. Every choice is a hash of (seed, key, purpose): a pair gets the same
grades in any batch or order. All error rates are multiplied by ``scale`` (capped at 1):
:func:`tune_profile` sets it on non-held-out gold so the judge meets a target kappa. Its model
folder holds ``judge.json`` (the profile and the truth table's location); its teacher id is
``simulated-llm-judge-<hash of that file>``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.quality.metrics import linear_weighted_kappa
from sim import raters, render, world
from sim.lexicon import ALL_SKILLS
from udfs.grades import GRADES, GradeDistribution

JUDGE_FILE = "judge.json"
DEFAULT_DIR = "simulated-llm-judge"
_NOISE_A, _NOISE_B, _BORDER, _LEAN, _SWAY = range(5)
_CANONICAL = frozenset(ALL_SKILLS)
RATES = (
    "alias_miss",
    "prose_miss",
    "field_trust",
    "title_trust",
    "stuffing_sway",
    "injection_sway",
    "noise",
    "borderline_bias",
)


@dataclass(frozen=True)
class JudgeProfile:
    """The judge's relative error rates; each acts as ``min(1, rate * scale)``."""

    alias_miss: float = 0.35
    prose_miss: float = 0.25
    field_trust: float = 0.4
    title_trust: float = 0.5
    stuffing_sway: float = 0.5
    injection_sway: float = 0.3
    noise: float = 0.25
    borderline_bias: float = 0.1
    spread: float = 0.6
    seed: int = 0
    scale: float = 1.0

    def rate(self, name: str) -> float:
        return min(1.0, getattr(self, name) * self.scale)


def _uniform(keys: list[str], seed: int, purpose: str) -> np.ndarray:
    return raters._uniform(raters._hash64(keys, seed, purpose), 0, 0)


class SimulatedJudge:
    """Grades (member, job) rows from the facts, misreading their text like an LLM judge.

    Example::

        judge = SimulatedJudge(truth_frame, JudgeProfile(scale=1.2))
        dist = judge.grade_rows(members[["member_id"]], jobs[["job_id", "description"]])
        dist.expected  # soft scores, one per pair
    """

    def __init__(self, truth: pd.DataFrame, profile: JudgeProfile):
        self.truth = truth.set_index("entity_id") if "entity_id" in truth.columns else truth
        self.profile = profile
        forms = {f for fs in self.truth.skill_forms for f in fs} - _CANONICAL
        ordered = sorted(forms)
        missed = _uniform(ordered, profile.seed, "alias") < profile.rate("alias_miss")
        self.known_forms = _CANONICAL | {f for f, m in zip(ordered, missed, strict=True) if not m}

    @classmethod
    def load(cls, model_dir: str | Path) -> SimulatedJudge:
        from deltalake import DeltaTable

        spec = json.loads((Path(model_dir) / JUDGE_FILE).read_text())
        truth = DeltaTable(spec["truth_table"]).to_pyarrow_dataset().to_table().to_pandas()
        return cls(truth, JudgeProfile(**spec["profile"]))

    # ------------------------------------------------------------ what it believes it read

    def _read(self, ids: list[str]) -> pd.DataFrame:
        """The facts of ``ids`` (distinct) as the judge reads them from their text."""
        p = self.profile
        rows = self.truth.loc[ids].reset_index()

        def chance(purpose: str, rate: str) -> np.ndarray:
            return _uniform(ids, p.seed, purpose) < p.rate(rate)

        out = rows.copy()
        inflated = rows.title_level != rows.seniority_level
        stale_level = rows.declared_level != rows.seniority_level
        by_title = inflated & chance("title", "title_trust")
        by_field = stale_level & chance("level", "field_trust")
        out["seniority_level"] = np.where(
            by_title,
            rows.title_level,
            np.where(by_field, rows.declared_level, rows.seniority_level),
        )
        stale_city = (rows.declared_region != rows.region) & chance("city", "field_trust")
        out["region"] = np.where(stale_city, rows.declared_region, rows.region)
        stale_place = (rows.declared_workplace != rows.workplace) & chance("place", "field_trust")
        out["workplace"] = np.where(stale_place, rows.declared_workplace, rows.workplace)
        out["relocation_region"] = np.where(
            chance("relocation", "prose_miss"), "", rows.relocation_region
        )
        missed_auth = chance("auth", "prose_miss")
        out["work_authorization"] = [
            [c for c in auth if not (miss and c in set(prose))]
            for auth, prose, miss in zip(
                rows.work_authorization, rows.auth_in_prose, missed_auth, strict=True
            )
        ]
        unset = rows.declared_sponsorship.isna().to_numpy()
        out["visa_sponsorship"] = rows.visa_sponsorship.to_numpy(dtype=bool) & ~(
            unset & chance("sponsor", "prose_miss")
        )
        swayed = chance("stuffing", "stuffing_sway")
        forms = []
        for k, r in enumerate(rows.itertuples(index=False)):
            prose = sorted(set(r.skills_in_prose))
            skipped = _uniform([f"{r.entity_id}|{s}" for s in prose], p.seed, "prose") < p.rate(
                "prose_miss"
            )
            missed = {s for s, m in zip(prose, skipped, strict=True) if m}
            seen = {s: f for s, f in zip(r.skills, r.skill_forms, strict=True) if s not in missed}
            if swayed[k]:
                seen |= {s: s for s in r.padding_skills if s not in seen}
            forms.append(seen)
        out["forms"] = forms
        return out.set_index("entity_id")

    def _coverage(self, members: pd.DataFrame, jobs: pd.DataFrame) -> np.ndarray:
        """Share of each job's required skills the judge sees the member has: a skill counts when
        the member has it and the judge links the two surface forms (the same string, or both
        forms known to it)."""
        known = self.known_forms
        out = np.zeros(len(members))
        for i, (seen, job_skills, job_forms) in enumerate(
            zip(members.forms, jobs.skills, jobs.skill_forms, strict=True)
        ):
            hits = 0
            for skill, job_form in zip(job_skills, job_forms, strict=True):
                form = seen.get(skill)
                if form is not None and (form == job_form or (form in known and job_form in known)):
                    hits += 1
            out[i] = hits / max(len(job_skills), 1)
        return out

    def grade_rows(self, members: pd.DataFrame, jobs: pd.DataFrame) -> GradeDistribution:
        """Grade distribution of each aligned (members[i], jobs[i]) row pair.

        ``members`` needs ``member_id`` and ``jobs`` needs ``job_id``; any other text column
        (summary, description, ...) is searched for planted injections.
        """
        p = self.profile
        n = len(members)
        if n == 0:
            return GradeDistribution(np.zeros((0, len(GRADES)), dtype=np.float32))
        member_ids = members.member_id.astype(str).tolist()
        job_ids = jobs.job_id.astype(str).tolist()
        m = self._read(list(dict.fromkeys(member_ids))).loc[member_ids].reset_index()
        j = self._read(list(dict.fromkeys(job_ids))).loc[job_ids].reset_index()
        parts = world.grade_parts(m, j)
        parts["coverage"] = self._coverage(m, j)
        estimate = world.apply_caps(world.weighted_grade(parts), parts).astype(float)
        keys = [f"{a}|{b}" for a, b in zip(member_ids, job_ids, strict=True)]
        base = raters._hash64(keys, p.seed, "judge")
        u = {k: raters._uniform(base, 0, k) for k in range(5)}
        normal = np.sqrt(-2 * np.log1p(-u[_NOISE_A])) * np.cos(2 * np.pi * u[_NOISE_B])
        estimate = estimate + p.rate("noise") * normal
        borderline = (
            (estimate >= 1.5) & (estimate <= 3.5) & (u[_BORDER] < p.rate("borderline_bias"))
        )
        estimate = np.where(borderline, estimate + np.where(u[_LEAN] < 0.5, 0.7, -0.7), estimate)
        asked = _injected_grade(members, jobs)
        swayed = ~np.isnan(asked) & (u[_SWAY] < p.rate("injection_sway"))
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
        if render.has_injection(joined):
            out[i] = 0.0 if "grade: 0" in joined else 4.0
    return out


def tune_profile(
    truth: pd.DataFrame,
    members: pd.DataFrame,
    jobs: pd.DataFrame,
    gold_grades: np.ndarray,
    profile: JudgeProfile,
    target_kappa: float,
    *,
    steps: int = 24,
) -> tuple[JudgeProfile, float]:
    """``profile`` with the ``scale`` whose kappa against ``gold_grades`` is closest to
    ``target_kappa`` (bisection on [0, 1 / smallest rate]), and that kappa.

    ``members[i]``, ``jobs[i]`` and ``gold_grades[i]`` are one gold pair; pass **non-held-out**
    pairs only: held-out gold is for reporting the judge's kappa, never for setting it."""

    def kappa(scale: float) -> float:
        judge = SimulatedJudge(truth, dataclasses.replace(profile, scale=scale))
        return linear_weighted_kappa(gold_grades, judge.grade_rows(members, jobs).grade)

    rates = [getattr(profile, r) for r in RATES if getattr(profile, r) > 0]
    low, high = 0.0, 1.0 / min(rates)
    if kappa(low) < target_kappa:  # even an error-free reading is below the target
        return dataclasses.replace(profile, scale=0.0), kappa(0.0)
    for _ in range(steps):  # kappa falls as the scale grows
        mid = (low + high) / 2
        low, high = (mid, high) if kappa(mid) >= target_kappa else (low, mid)
    best = min((low, high), key=lambda s: abs(kappa(s) - target_kappa))
    return dataclasses.replace(profile, scale=round(best, 4)), kappa(round(best, 4))


def write_judge(
    model_dir: str | Path, truth_table: str, profile: JudgeProfile, tuning: dict | None = None
) -> Path:
    """The simulated judge's folder: ``judge.json`` with its profile, the truth location and how
    its scale was tuned."""
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    spec = {
        "kind": "simulated-llm-judge",
        "truth_table": truth_table,
        "profile": asdict(profile),
        "tuning": tuning or {},
    }
    (root / JUDGE_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True))
    return root


def load_judge(model_dir: str | Path) -> SimulatedJudge:
    """Teacher backend entry point (``udfs.teacher.BACKENDS['simulated']``)."""
    return SimulatedJudge.load(model_dir)

"""The rules baseline: the policy written as rules over the declared fields.

What a team writes in an afternoon from ``conf/policy/job_match.md``, and as strong as declared
fields allow: every dimension and cap of the policy that a structured field or a title shows.
It reads the member's headline, skills, seniority, location, remote preference and work
authorization, and the post's title, skills, seniority, location, workplace type and visa
sponsorship; never the summary or the description. Spark-free: pandas in, numpy out.

* **occupation** -- the titles' words without level words: the same words are the same
  occupation (1); titles in the same family by a keyword table written from the policy's
  families are adjacent (0.5); a title with no known family falls back to shared skills;
  different families get 0 and the cap.
* **skills** -- the share of the post's skills found in the member's list, both normalised
  (case, punctuation and spacing ignored).
* **seniority** -- the level word of the member's headline when it has one, else the seniority
  field, against the post's seniority field; two or more levels apart caps at 2.
* **location** -- a remote post, or the same city and a member who does not want remote only.
* **authorization** -- the post's country in the member's field, or the post sponsors visas.

The score ranks by the policy's weighted fit under the caps (``min(4 * fit, cap)``, with capped
pairs ordered by their fit just below the cap); the grade is that score rounded.

Example::

    rules = PolicyRules()
    dist = rules.grade_rows(members, jobs)  # member and job fields, row-aligned
    dist.expected  # the ranking score, 0-4
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from udfs.grades import GRADES, GradeDistribution

VERSION = "policy-rules-2.0"
MEMBER_FIELDS = (
    "headline",
    "skills",
    "seniority",
    "location",
    "remote_preference",
    "work_authorization",
)
JOB_FIELDS = ("title", "skills", "seniority", "location", "workplace_type", "visa_sponsorship")
SENIORITY = ("entry", "mid", "senior", "staff", "principal")
LEVEL_WORDS = {
    "junior": 0, "jr": 0, "graduate": 0, "intern": 0, "senior": 2, "sr": 2, "staff": 3,
    "lead": 3, "principal": 4, "head": 4,
}  # fmt: skip
# Words a title uses for its level or as filler, not for the occupation.
_NOT_OCCUPATION = set(LEVEL_WORDS) | {"of", "i", "ii", "iii", "iv", "the", "and"}
# The policy's families (section 3.1), by the words titles use for them.
FAMILY_WORDS = {
    "data": {"data", "analytics", "scientist", "science", "machine", "learning", "ml", "ai",
             "mlops", "bi", "etl", "quantitative"},
    "software": {"software", "backend", "frontend", "mobile", "ios", "android", "developer",
                 "devops", "sre", "reliability", "platform", "web", "ui", "react", "java"},
    "product": {"product", "ux", "designer", "design", "pm", "owner"},
    "sales": {"sales", "account", "executive", "development", "representative", "sdr", "bdr"},
    "marketing": {"marketing", "marketer", "growth", "content", "copywriter", "seo", "brand"},
    "finance": {"finance", "financial", "accountant", "accounting", "fp", "cpa", "controller"},
    "health": {"nurse", "rn", "nursing", "pharmacist", "pharmacy", "pharmd", "clinical", "icu"},
    "operations": {"operations", "ops", "supply", "chain", "logistics", "planner", "plant",
                   "procurement"},
}  # fmt: skip
# "Account Executive" is sales, not finance; "Product Designer" is design: the more specific
# family wins when a title's words point to several.
FAMILY_ORDER = ("health", "sales", "marketing", "finance", "operations", "data", "product",
                 "software")  # fmt: skip


def normalise(text: object) -> str:
    """Lower case, every run of non-alphanumerics one space."""
    if not isinstance(text, str):
        return ""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def skill_set(text: object) -> frozenset[str]:
    """The normalised, non-empty items of a comma-separated list."""
    if not isinstance(text, str):
        return frozenset()
    return frozenset(s for s in (normalise(item) for item in text.split(",")) if s)


def parse_title(title: object) -> tuple[int | None, frozenset[str]]:
    """(level word's level or None, the occupation words) of a title or a headline (the
    employer after ' at ' is dropped)."""
    text = title if isinstance(title, str) else ""
    words = normalise(re.split(r"\s+at\s+", text, maxsplit=1)[0]).split()
    level = next((LEVEL_WORDS[w] for w in words if w in LEVEL_WORDS), None)
    return level, frozenset(w for w in words if w not in _NOT_OCCUPATION)


def family(words: frozenset[str]) -> str | None:
    hits = {f for f, known in FAMILY_WORDS.items() if words & known}
    return next((f for f in FAMILY_ORDER if f in hits), None)


def _level(value: object) -> int | None:
    return SENIORITY.index(value) if value in SENIORITY else None


def _city(location: object) -> str:
    return normalise(location.split(",")[0]) if isinstance(location, str) else ""


def _country(location: object) -> str:
    return location.split(",")[-1].strip().upper() if isinstance(location, str) else ""


def rule_parts(members: pd.DataFrame, jobs: pd.DataFrame) -> dict[str, np.ndarray]:
    """The policy's dimensions per aligned (member, job) row, from declared fields only (the keys
    of :func:`sim.world.grade_parts`, so the same combination and caps apply)."""
    n = len(members)
    occupation, coverage = np.zeros(n), np.zeros(n)
    gap = np.zeros(n, dtype=np.int64)
    location_ok, authorized = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    rows = zip(members.itertuples(index=False), jobs.itertuples(index=False), strict=True)
    for i, (m, j) in enumerate(rows):
        m_level, m_words = parse_title(m.headline)
        _, j_words = parse_title(j.title)
        m_skills, j_skills = skill_set(m.skills), skill_set(j.skills)
        shared = len(m_skills & j_skills)
        if m_words and m_words == j_words:
            occupation[i] = 1.0
        else:
            m_family, j_family = family(m_words), family(j_words)
            same = m_family == j_family if m_family and j_family else shared > 0
            occupation[i] = 0.5 if same else 0.0
        coverage[i] = shared / max(len(j_skills), 1)
        member_level = m_level if m_level is not None else _level(m.seniority)
        job_level = _level(j.seniority)
        gap[i] = abs((member_level or 0) - (job_level or 0))
        remote_job = j.workplace_type == "remote"
        same_city = _city(m.location) == _city(j.location) != ""
        location_ok[i] = remote_job or (same_city and m.remote_preference != "remote")
        auth = {c.strip().upper() for c in str(m.work_authorization or "").split(",")}
        authorized[i] = _country(j.location) in auth or j.visa_sponsorship is True
    return {
        "occupation": occupation,
        "coverage": coverage,
        "gap": gap,
        "location_ok": location_ok,
        "authorized": authorized,
    }


def rule_scores(parts: dict[str, np.ndarray]) -> np.ndarray:
    """``min(4 * fit, cap - 0.2 * (1 - fit))``: the policy's weighted fit (section 4) under its
    caps (section 5), capped pairs ordered by their fit just below the cap."""
    seniority = np.select([parts["gap"] == 0, parts["gap"] == 1], [1.0, 0.5], 0.0)
    fit = 0.35 * parts["occupation"] + 0.40 * parts["coverage"] + 0.25 * seniority
    hard_miss = (parts["occupation"] == 0) | ~parts["location_ok"] | ~parts["authorized"]
    cap = np.where(hard_miss, 1.0, np.where(parts["gap"] >= 2, 2.0, 4.0))
    return np.minimum(4 * fit, cap - 0.2 * (1 - fit))


class PolicyRules:
    """The rules baseline as a grade model (teacher backend ``rules``): p(grade) puts the score's
    mass on its two nearest grades, so the expected grade is the score."""

    def grade_rows(self, members: pd.DataFrame, jobs: pd.DataFrame) -> GradeDistribution:
        score = np.clip(rule_scores(rule_parts(members, jobs)), 0, len(GRADES) - 1)
        low = np.floor(score).astype(int)
        high = np.minimum(low + 1, len(GRADES) - 1)
        probs = np.zeros((len(score), len(GRADES)), dtype=np.float64)
        rows = np.arange(len(score))
        np.add.at(probs, (rows, high), score - low)
        np.add.at(probs, (rows, low), 1 - (score - low))
        return GradeDistribution(probs.astype(np.float32))

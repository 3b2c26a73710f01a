"""The synthetic world's hidden facts, and the true grade they imply (docs/world.md).

Each member and job is one row of *facts* (what a careful reader of its text credits: the
occupation, the level, the current city, skills under their canonical names, work
authorization, a city the member would move to, sponsorship) and of *presentation* (how the text
states them: surface forms of skills, which facts only the prose states, stale structured fields,
an inflated title, a padded skills list). :mod:`sim.render` writes the text from such a row;
:func:`true_grade` applies the policy to the facts; the simulated judge misreads the presentation.

Everything is a pure function of ``(seed, entity, chunk)``: rows are generated in fixed chunks of
``CHUNK`` ids, each chunk from its own seeded RNG, so the world is identical however Spark
partitions the work. The rows are the ``truth`` table (simulator only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemas.vocab import WORKPLACE_TYPES
from sim.lexicon import (
    ALL_SKILLS,
    BUZZWORDS,
    COUNTRIES,
    EU,
    LEVEL_YEARS,
    OCC_NAMES,
    OCCUPATIONS,
    REGIONS,
    SKILL_ALIASES,
    TITLE_VARIANTS,
)

CHUNK = 1024

# The shares of docs/world.md, in one place.
MEMBER_ALIAS_SHARE = 0.35  # a skill mention uses another name (when the skill has one)
JOB_ALIAS_SHARE = 0.20
PROSE_ONLY_SKILL_SHARE = 0.25  # a member's skill named only in the summary
STUFFED_SHARE = 0.08  # skills list padded to 12-16 entries
STALE_LEVEL_SHARE = 0.25  # seniority field one level below (members above entry level)
INFLATED_MEMBER_TITLE_SHARE = 0.12  # of members who state their years
YEARS_STATED_SHARE = 0.80
MEMBER_TITLE_VARIANT_SHARE = 0.40
JOB_TITLE_VARIANT_SHARE = 0.30
STALE_WORKPLACE_SHARE = 0.12
MOVED_SHARE = 0.06  # within the country, where it has a second city
RELOCATION_SHARE = 0.10
EU_CITIZEN_SHARE = (0.70, 0.05)  # of members based in an EU country / elsewhere
EU_FIELD_LISTS_RESIDENCE_ONLY = 0.60
EXTRA_PERMIT_SHARE, EXTRA_PERMIT_IN_FIELD = 0.20, 0.50
INFLATED_JOB_TITLE_SHARE = 0.15
SPONSOR_SHARE = 0.30
SPONSORSHIP_FIELD_EMPTY = (0.25, 0.10)  # of sponsoring / non-sponsoring posts

_CITIES_BY_COUNTRY = {c: [r for r, cc in REGIONS if cc == c] for c in COUNTRIES}
_COUNTRY_OF = dict(REGIONS)


def _rng(seed: int, entity: str, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0 if entity == "member" else 1, chunk])


def _ids(chunk: int, total: int) -> np.ndarray:
    return np.arange(chunk * CHUNK, min(total, (chunk + 1) * CHUNK))


def _form(rng: np.random.Generator, skill: str, alias_share: float) -> str:
    aliases = SKILL_ALIASES.get(skill, ())
    if aliases and rng.random() < alias_share:
        return str(aliases[rng.integers(len(aliases))])
    return skill


def _title(rng: np.random.Generator, occupation: str, variant_share: float) -> str:
    if rng.random() < variant_share:
        variants = TITLE_VARIANTS[occupation]
        return variants[rng.integers(len(variants))]
    return OCCUPATIONS[occupation][1]


def member_latents(seed: int, chunk: int, total: int) -> pd.DataFrame:
    """Facts and presentation of members ``chunk*CHUNK .. min(total, (chunk+1)*CHUNK)-1``."""
    rng = _rng(seed, "member", chunk)
    rows = []
    for i in _ids(chunk, total):
        occupation = OCC_NAMES[rng.integers(len(OCC_NAMES))]
        level = int(rng.choice(5, p=[0.2, 0.3, 0.25, 0.15, 0.1]))
        city, country = REGIONS[rng.integers(len(REGIONS))]
        workplace = WORKPLACE_TYPES[rng.choice(3, p=[0.3, 0.4, 0.3])]
        pool = OCCUPATIONS[occupation][2]
        skills = [str(s) for s in rng.choice(pool, size=rng.integers(4, 8), replace=False)]
        if rng.random() < 0.3:
            extra = ALL_SKILLS[rng.integers(len(ALL_SKILLS))]
            if extra not in skills:
                skills.append(extra)
        lo, hi = LEVEL_YEARS[level]
        years = int(rng.integers(max(lo, 1), hi + 1))

        # Work authorization: residence, EU citizenship, another permit; what the field omits,
        # the summary states.
        in_field = {country}
        in_prose: set[str] = set()
        if rng.random() < EU_CITIZEN_SHARE[0 if country in EU else 1]:
            if rng.random() < EU_FIELD_LISTS_RESIDENCE_ONLY:
                in_prose |= set(EU) - in_field
            else:
                in_field |= set(EU)
        if rng.random() < EXTRA_PERMIT_SHARE:
            permit = COUNTRIES[rng.integers(len(COUNTRIES))]
            if permit not in in_field | in_prose:
                (in_field if rng.random() < EXTRA_PERMIT_IN_FIELD else in_prose).add(permit)
        relocation = ""
        if rng.random() < RELOCATION_SHARE:
            others = [r for r, _ in REGIONS if r != city]
            relocation = others[rng.integers(len(others))]

        # Presentation.
        forms = [_form(rng, s, MEMBER_ALIAS_SHARE) for s in skills]
        stuffed = bool(rng.random() < STUFFED_SHARE)
        prose_only = [] if stuffed else [s for s in skills if rng.random() < PROSE_ONLY_SKILL_SHARE]
        if len(skills) - len(prose_only) < 2:
            prose_only = prose_only[: len(skills) - 2]
        padding: list[str] = []
        if stuffed:
            family = OCCUPATIONS[occupation][0]
            fill = sorted(
                {s for o, (f, _, p) in OCCUPATIONS.items() if f == family for s in p}
                | set(BUZZWORDS)
            )
            fill = [s for s in fill if s not in skills]
            want = int(rng.integers(12, 17)) - len(skills)
            padding = [str(s) for s in rng.choice(fill, size=min(want, len(fill)), replace=False)]
        years_stated = bool(rng.random() < YEARS_STATED_SHARE)
        inflated = years_stated and level < 4 and rng.random() < INFLATED_MEMBER_TITLE_SHARE
        declared_level = level - 1 if level > 0 and rng.random() < STALE_LEVEL_SHARE else level
        declared_workplace = workplace
        if rng.random() < STALE_WORKPLACE_SHARE:
            if workplace == "remote":
                declared_workplace = ("onsite", "hybrid")[rng.integers(2)]
            else:
                declared_workplace = "remote"
        declared_region = city
        siblings = [c for c in _CITIES_BY_COUNTRY[country] if c != city]
        if siblings and rng.random() < MOVED_SHARE:
            declared_region = siblings[rng.integers(len(siblings))]
        rows.append(
            {
                "entity_id": f"m{i:07d}",
                "occupation": occupation,
                "seniority_level": level,
                "region": city,
                "country": country,
                "workplace": workplace,
                "skills": skills,
                "work_authorization": sorted(in_field | in_prose),
                "visa_sponsorship": False,
                "relocation_region": relocation,
                "years": years,
                "years_stated": years_stated,
                "title": _title(rng, occupation, MEMBER_TITLE_VARIANT_SHARE),
                "title_level": level + 1 if inflated else level,
                "declared_level": declared_level,
                "declared_region": declared_region,
                "declared_workplace": declared_workplace,
                "declared_sponsorship": None,
                "skill_forms": forms,
                "skills_in_prose": prose_only,
                "padding_skills": padding,
                "auth_in_prose": sorted(in_prose),
            }
        )
    return _frame("member", rows)


def job_latents(seed: int, chunk: int, total: int) -> pd.DataFrame:
    """Facts and presentation of jobs ``chunk*CHUNK .. min(total, (chunk+1)*CHUNK)-1``."""
    rng = _rng(seed, "job", chunk)
    rows = []
    for i in _ids(chunk, total):
        occupation = OCC_NAMES[rng.integers(len(OCC_NAMES))]
        level = int(rng.choice(5, p=[0.15, 0.3, 0.3, 0.15, 0.1]))
        city, country = REGIONS[rng.integers(len(REGIONS))]
        workplace = WORKPLACE_TYPES[rng.choice(3, p=[0.35, 0.4, 0.25])]
        pool = OCCUPATIONS[occupation][2]
        skills = [str(s) for s in rng.choice(pool, size=rng.integers(3, 6), replace=False)]
        sponsor = bool(rng.random() < SPONSOR_SHARE)
        empty = rng.random() < SPONSORSHIP_FIELD_EMPTY[0 if sponsor else 1]
        inflated = level < 4 and rng.random() < INFLATED_JOB_TITLE_SHARE
        rows.append(
            {
                "entity_id": f"j{i:06d}",
                "occupation": occupation,
                "seniority_level": level,
                "region": city,
                "country": country,
                "workplace": workplace,
                "skills": skills,
                "work_authorization": [],
                "visa_sponsorship": sponsor,
                "relocation_region": "",
                "years": LEVEL_YEARS[level][0],
                "years_stated": True,
                "title": _title(rng, occupation, JOB_TITLE_VARIANT_SHARE),
                "title_level": level + 1 if inflated else level,
                "declared_level": level,
                "declared_region": city,
                "declared_workplace": workplace,
                "declared_sponsorship": None if empty else sponsor,
                "skill_forms": [_form(rng, s, JOB_ALIAS_SHARE) for s in skills],
                "skills_in_prose": [],
                "padding_skills": [],
                "auth_in_prose": [],
            }
        )
    return _frame("job", rows)


LATENT_COLUMNS = [
    "entity",
    "entity_id",
    "occupation",
    "family",
    "seniority_level",
    "region",
    "country",
    "workplace",
    "skills",
    "work_authorization",
    "visa_sponsorship",
    "relocation_region",
    "years",
    "years_stated",
    "title",
    "title_level",
    "declared_level",
    "declared_region",
    "declared_workplace",
    "declared_sponsorship",
    "skill_forms",
    "skills_in_prose",
    "padding_skills",
    "auth_in_prose",
]


def _frame(entity: str, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[c for c in LATENT_COLUMNS if c not in ("entity", "family")])
    frame.insert(0, "entity", entity)
    frame.insert(3, "family", [OCCUPATIONS[o][0] for o in frame.occupation])
    for col in ("seniority_level", "years", "title_level", "declared_level"):
        frame[col] = frame[col].astype("int32")
    frame["declared_sponsorship"] = frame["declared_sponsorship"].astype(object)
    return frame[LATENT_COLUMNS]


# ---------------------------------------------------------------- the true grade


def grade_parts(member: pd.DataFrame, job: pd.DataFrame) -> dict[str, np.ndarray]:
    """The policy's dimensions for each aligned (member, job) row pair, from the facts:
    ``occupation`` (1 same, 0.5 same family, 0 other), ``coverage`` (share of the job's skills
    the member has), ``gap`` (seniority levels apart), ``location_ok`` and ``authorized``
    (work authorization or visa sponsorship)."""
    m, j = member.reset_index(drop=True), job.reset_index(drop=True)
    occupation = np.where(
        m.occupation == j.occupation, 1.0, np.where(m.family == j.family, 0.5, 0.0)
    )
    coverage = np.array(
        [len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(m.skills, j.skills, strict=True)]
    )
    gap = np.abs(m.seniority_level.to_numpy() - j.seniority_level.to_numpy())
    relocation = m["relocation_region"] if "relocation_region" in m else pd.Series([""] * len(m))
    in_city = (m.region == j.region).to_numpy() | (relocation == j.region).to_numpy()
    job_remote = (j.workplace == "remote").to_numpy()
    member_remote_only = (m.workplace == "remote").to_numpy()
    location_ok = job_remote | (in_city & ~member_remote_only)
    allowed = np.array([c in a for c, a in zip(j.country, m.work_authorization, strict=True)])
    authorized = allowed | j.visa_sponsorship.to_numpy(dtype=bool)
    return {
        "occupation": occupation,
        "coverage": coverage,
        "gap": gap,
        "location_ok": location_ok,
        "authorized": authorized,
    }


def weighted_grade(parts: dict[str, np.ndarray]) -> np.ndarray:
    """The policy's weighted score on the 0-4 scale, before caps (continuous)."""
    seniority = np.select([parts["gap"] == 0, parts["gap"] == 1], [1.0, 0.5], 0.0)
    return 4 * (0.35 * parts["occupation"] + 0.40 * parts["coverage"] + 0.25 * seniority)


def apply_caps(grade: np.ndarray, parts: dict[str, np.ndarray]) -> np.ndarray:
    """A different occupation family, an incompatible location/remote setup or a missing work
    authorization without sponsorship cap the grade at 1; a seniority gap of two or more levels
    caps it at 2."""
    hard_miss = (parts["occupation"] == 0) | ~parts["location_ok"] | ~parts["authorized"]
    capped = np.where(hard_miss, np.minimum(grade, 1), grade)
    return np.where(parts["gap"] >= 2, np.minimum(capped, 2), capped)


def true_grade(member: pd.DataFrame, job: pd.DataFrame) -> np.ndarray:
    """The true 0-4 grade of each aligned (member, job) row pair, from the facts.

    Weighs occupation (0.35), skills coverage (0.40) and seniority fit (0.25), rounds (halves to
    even), then applies the policy's caps (:func:`apply_caps`).
    """
    parts = grade_parts(member, job)
    return apply_caps(np.rint(weighted_grade(parts)), parts).astype("int8")


def good_pairs(truth: pd.DataFrame, member_ids, job_ids, min_grade: int = 3) -> pd.DataFrame:
    """All (member_id, job_id) pairs among the given ids whose true grade is >= ``min_grade``:
    the reference set for measuring candidate recall (evaluation only; scoring never reads it)."""
    t = truth.set_index("entity_id")
    m, j = t.loc[list(member_ids)], t.loc[list(job_ids)]
    mi, ji = np.repeat(np.arange(len(m)), len(j)), np.tile(np.arange(len(j)), len(m))
    keep = true_grade(m.iloc[mi], j.iloc[ji]) >= min_grade
    return pd.DataFrame(
        {"member_id": m.index.to_numpy()[mi][keep], "job_id": j.index.to_numpy()[ji][keep]}
    )

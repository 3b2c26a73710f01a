"""`policyrank advance` (simulator): one day of churn, so the demo, the tests and the benches can
run several days in a row on a world that changes the way real ones do (docs/world.md, "A day of
churn"): edited, new and deleted member profiles, new and closed job posts.

:func:`plan_churn` is the pure core: from the current tables (pandas), the world's seed and the
date, the day's changes and the facts behind them. It draws from streams of its own, seeded by
(seed, date): a rerun of a day plans the same changes, another day other ones. :func:`advance`
applies a plan with Delta DML, one MERGE per table (update the edited rows, delete the deleted
ones, insert the new), so the tables' history and change data feed hold exactly the changed rows.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from jobs.config.settings import ChurnSettings, Settings, WorldSettings
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.runtime.spark_session import session_like
from jobs.warehouse.tables import Warehouse
from schemas.tables import TABLES, TRUTH
from sim import render, world
from sim.lexicon import LEVEL_YEARS, OCCUPATIONS, REGIONS

# What a profile edit is, and how often (docs/world.md: an assumption).
EDIT_KINDS = ("skill", "promotion", "move", "summary")
EDIT_WEIGHTS = (0.40, 0.20, 0.15, 0.25)

LIST_COLUMNS = (
    "skills",
    "work_authorization",
    "skill_forms",
    "skills_in_prose",
    "padding_skills",
    "auth_in_prose",
)
_ID_FORMAT = {"member": ("m", 7), "job": ("j", 6)}  # sim.world: m0000123, j000123
# world.py draws from [seed, 0|1, chunk] and render.py from [seed, 2..5, chunk]: the day's
# choices use [seed, _STREAM, date, purpose], its new rows chunk numbers no world reaches.
_STREAM = 22
_FRESH_CHUNK = 1 << 40
_PICK_MEMBERS, _PICK_JOBS, _NEW_MEMBERS, _NEW_JOBS, _EDITS = range(5)
_COUNTRY_OF = dict(REGIONS)

HINT = "run `policyrank generate` first (the simulator's world)"
TAG = "churn:"  # a commit of one day's churn carries "<run id> churn:<date>" as its userMetadata


@dataclass(frozen=True)
class Churn:
    """One day's changes: rendered rows (``render.MEMBER_COLUMNS`` / ``JOB_COLUMNS``) and their
    facts (``world.LATENT_COLUMNS``). Edited rows are whole new rows under their old ids."""

    day: dt.date
    edited_members: pd.DataFrame
    edit_kinds: dict[str, int]
    new_members: pd.DataFrame
    deleted_members: list[str]
    new_jobs: pd.DataFrame
    closed_jobs: list[str]
    truth_upserts: pd.DataFrame
    truth_deletes: list[str]

    def counts(self) -> dict[str, int]:
        return {
            "members_edited": len(self.edited_members),
            "members_new": len(self.new_members),
            "members_deleted": len(self.deleted_members),
            "jobs_new": len(self.new_jobs),
            "jobs_closed": len(self.closed_jobs),
        }

    def members_after(self, members: pd.DataFrame) -> pd.DataFrame:
        """``members`` with the plan applied, as the MERGE leaves the table (row order aside)."""
        gone = members.member_id.isin([*self.edited_members.member_id, *self.deleted_members])
        return _concat([members[~gone], self.edited_members, self.new_members])

    def jobs_after(self, jobs: pd.DataFrame) -> pd.DataFrame:
        return _concat([jobs[~jobs.job_id.isin(self.closed_jobs)], self.new_jobs])

    def truth_after(self, truth: pd.DataFrame) -> pd.DataFrame:
        gone = truth.entity_id.isin([*self.truth_deletes, *self.truth_upserts.entity_id])
        return _concat([truth[~gone], self.truth_upserts])


def plan_churn(
    members: pd.DataFrame,
    jobs: pd.DataFrame,
    truth: pd.DataFrame,
    conf: WorldSettings,
    day: dt.date,
) -> Churn:
    """The day's churn of the world in ``members``, ``jobs`` and ``truth`` (pure pandas).

    Counts are ``conf.churn``'s shares of the current row counts (rounded). Only rows whose id
    is set and unique in its table are edited, deleted or closed: a MERGE on a duplicated id
    would touch every copy. New ids continue after the largest id in use, and the entity holding
    the largest id is never deleted, so a deleted id is never handed out again. New and edited
    rows are rendered like the rest of the world: ``bad_row_share`` broken, ``injection_share``
    injected (an edit keeps its id, though: the feed's key is the system's, not the member's).
    """
    _check(conf.churn)
    shares, seed, injected = conf.churn, conf.seed, conf.injection_share
    facts = truth.set_index("entity_id", drop=False)

    def rng(purpose: int) -> np.random.Generator:
        return np.random.default_rng([seed, _STREAM, day.toordinal(), purpose])

    member_ids = _eligible(members.member_id, facts, "member")
    job_ids = _eligible(jobs.job_id, facts, "job")
    top_member, next_member = _id_range(members.member_id, truth.entity_id, "member")
    top_job, next_job = _id_range(jobs.job_id, truth.entity_id, "job")

    m, j = len(members), len(jobs)
    pick = rng(_PICK_MEMBERS)
    edited = _draw(pick, member_ids, _count(shares.edited_members_share, m))
    deletable = sorted(set(member_ids) - set(edited) - {top_member})
    deleted = _draw(pick, deletable, _count(shares.deleted_members_share, m))
    closable = [i for i in job_ids if i != top_job]
    closed = _draw(rng(_PICK_JOBS), closable, _count(shares.closed_jobs_share, j))

    edited_facts, kinds = _edit(facts.loc[edited], rng(_EDITS))
    edited_rows = render.render_members(
        edited_facts, seed, _chunk(day, _EDITS), conf.bad_row_share, injection_share=injected
    )
    edited_rows["member_id"] = edited_facts.entity_id.to_numpy()
    member_facts, member_rows = _newcomers(
        "member", conf, day, next_member, _count(shares.new_members_share, m)
    )
    job_facts, job_rows = _newcomers("job", conf, day, next_job, _count(shares.new_jobs_share, j))
    return Churn(
        day=day,
        edited_members=edited_rows,
        edit_kinds=kinds,
        new_members=member_rows,
        deleted_members=deleted,
        new_jobs=job_rows,
        closed_jobs=closed,
        truth_upserts=_concat([edited_facts, member_facts, job_facts]),
        truth_deletes=[*deleted, *closed],
    )


def _check(conf: ChurnSettings) -> None:
    for key, value in vars(conf).items():
        if not 0 <= value <= 1:
            raise PolicyrankError(f"world.churn.{key} must be a share in [0, 1], got {value}")


def _count(share: float, total: int) -> int:
    return int(round(share * total))


def _eligible(ids: pd.Series, facts: pd.DataFrame, entity: str) -> list[str]:
    """Ids set and unique in their table, with facts in ``truth``, sorted (Spark reads rows in
    no fixed order; the draw must not depend on it)."""
    counts = ids.dropna().value_counts()
    return sorted(set(counts.index[counts == 1]) & set(facts.index[facts.entity == entity]))


def _id_range(table_ids: pd.Series, truth_ids: pd.Series, entity: str) -> tuple[str | None, int]:
    """The largest id in use (table or truth) and the number the next new id gets."""
    prefix, _ = _ID_FORMAT[entity]
    pattern = re.compile(rf"{prefix}(\d+)")
    numbered = {
        i: int(m.group(1))
        for i in pd.concat([table_ids, truth_ids]).dropna().unique()
        if (m := pattern.fullmatch(str(i)))
    }
    if not numbered:
        return None, 0
    top = max(numbered, key=numbered.__getitem__)
    return top, numbered[top] + 1


def _draw(rng: np.random.Generator, ids: list[str], n: int) -> list[str]:
    chosen = rng.choice(len(ids), size=min(n, len(ids)), replace=False)
    return [ids[i] for i in sorted(chosen)]


def _chunk(day: dt.date, purpose: int) -> int:
    """A chunk number for the day's own draws, beyond any world's chunks (1,024 per purpose)."""
    return _FRESH_CHUNK + (day.toordinal() * 8 + purpose) * 1024


def _newcomers(
    entity: str, conf: WorldSettings, day: dt.date, start: int, n: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` new entities, ids ``start`` onwards: their facts, drawn as chunks no world has, and
    their rows, rendered like the world's (bad rows and injections included)."""
    if n > 1024 * world.CHUNK:
        raise PolicyrankError(f"one day adds at most {1024 * world.CHUNK:,} {entity}s, not {n:,}")
    make, draw, purpose = {
        "member": (world.member_latents, render.render_members, _NEW_MEMBERS),
        "job": (world.job_latents, render.render_jobs, _NEW_JOBS),
    }[entity]
    chunk, size = _chunk(day, purpose), world.CHUNK
    parts = [
        make(conf.seed, chunk + k, (chunk + k) * size + min(size, n - k * size))
        for k in range(max(1, math.ceil(n / size)))
    ]
    facts = pd.concat(parts, ignore_index=True)
    prefix, width = _ID_FORMAT[entity]
    facts["entity_id"] = [f"{prefix}{i:0{width}d}" for i in range(start, start + n)]
    rows = draw(facts, conf.seed, chunk, conf.bad_row_share, injection_share=conf.injection_share)
    return facts, rows


# ---------------------------------------------------------------- profile edits


def _edit(rows: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, int]]:
    """Each member's facts after one edit of a kind drawn by EDIT_WEIGHTS (a rewritten summary
    when the kind does not apply: no skill left to add, already at the top level)."""
    kinds = dict.fromkeys(EDIT_KINDS, 0)
    out = []
    for record in rows.to_dict("records"):
        r = {k: list(v) if k in LIST_COLUMNS else v for k, v in record.items()}
        kind = EDIT_KINDS[rng.choice(len(EDIT_KINDS), p=EDIT_WEIGHTS)]
        if not _EDIT[kind](r, rng):
            kind = "summary"
            _rewrite_summary(r, rng)
        kinds[kind] += 1
        out.append({k: v for k, v in r.items() if k not in ("entity", "family")})
    return world._frame("member", out), kinds


def _add_skill(r: dict, rng: np.random.Generator) -> bool:
    """A skill from the occupation's pool, listed (sometimes under another name)."""
    pool = [s for s in OCCUPATIONS[r["occupation"]][2] if s not in r["skills"]]
    if not pool:
        return False
    skill = str(pool[rng.integers(len(pool))])
    r["skills"].append(skill)
    r["skill_forms"].append(world._form(rng, skill, world.MEMBER_ALIAS_SHARE))
    r["padding_skills"] = [s for s in r["padding_skills"] if s != skill]
    return True


def _promote(r: dict, rng: np.random.Generator) -> bool:
    """One level up: the headline names the new level (and maybe a new title), the stated years
    reach the level's range; the seniority field is left stale as often as in the world."""
    level = int(r["seniority_level"])
    if level >= 4:
        return False
    inflated = r["title_level"] > level
    r["seniority_level"] = level + 1
    r["years"] = max(int(r["years"]), LEVEL_YEARS[level + 1][0])
    r["title"] = world._title(rng, r["occupation"], world.MEMBER_TITLE_VARIANT_SHARE)
    r["title_level"] = level + 2 if inflated and level + 1 < 4 else level + 1
    r["declared_level"] = level if rng.random() < world.STALE_LEVEL_SHARE else level + 1
    return True


def _move(r: dict, rng: np.random.Generator) -> bool:
    """A move to the city the member named, else to another one; the location field follows,
    and a move abroad comes with the right to work there (in the field)."""
    city = r["relocation_region"]
    if not city:
        others = [c for c, _ in REGIONS if c != r["region"]]
        city = others[rng.integers(len(others))]
    country = _COUNTRY_OF[city]
    r["region"] = r["declared_region"] = city
    r["country"] = country
    r["relocation_region"] = ""
    r["work_authorization"] = sorted({*r["work_authorization"], country})
    r["auth_in_prose"] = [c for c in r["auth_in_prose"] if c != country]
    return True


def _rewrite_summary(r: dict, rng: np.random.Generator) -> bool:
    """The same facts told anew: other skills named only in prose, the years maybe stated now."""
    if not r["padding_skills"]:
        prose = [s for s in r["skills"] if rng.random() < world.PROSE_ONLY_SKILL_SHARE]
        r["skills_in_prose"] = prose[: max(0, len(r["skills"]) - 2)]
    if not r["years_stated"] and rng.random() < 0.5:
        r["years_stated"] = True
    return True


_EDIT = {"skill": _add_skill, "promotion": _promote, "move": _move, "summary": _rewrite_summary}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    kept = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(kept, ignore_index=True)


# ---------------------------------------------------------------- the Spark edge


def advance(spark: SparkSession, settings: Settings, day: dt.date, *, run_id: str) -> dict:
    """Apply ``day``'s churn to ``members``, ``jobs`` (one MERGE each) and ``truth`` (rewritten
    whole, last). Each commit's userMetadata is ``"<run_id> churn:<day>"``: a day whose truth
    commit exists (since the world was last written whole) is done, and a second call is a no-op;
    after a crash part-way, the plan is made again from the tables as they were before the day's
    first commit, and only the tables without one are written."""
    wh = Warehouse.of(settings, spark)
    names = ("members", "jobs", "truth")
    for name in names:
        wh.read(name, hint=HINT)  # each exists, or one line saying how to make it
    tag = f"{TAG}{day.isoformat()}"
    done = {name: _applied_at(wh, name, tag) for name in names}
    if done["truth"] is not None:
        log(f"advance {day}: already applied (truth version {done['truth']}); nothing to do")
        return {"applied": False}
    frames = {
        name: wh.read(name, hint=HINT, version=None if v is None else v - 1).toPandas()
        for name, v in done.items()
    }
    plan = plan_churn(frames["members"], frames["jobs"], frames["truth"], settings.world, day)
    metadata = f"{run_id} {tag}"
    if done["members"] is None:
        edited, new, gone = plan.edited_members, plan.new_members, plan.deleted_members
        _merge(spark, wh, "members", edited, new, gone, metadata=metadata)
    if done["jobs"] is None:
        new, gone = plan.new_jobs, plan.closed_jobs
        _merge(spark, wh, "jobs", new.iloc[:0], new, gone, metadata=metadata)
    truth = _as_lists(plan.truth_after(frames["truth"]))
    truth_rows = spark.createDataFrame(truth[TRUTH.names], TRUTH.spark_schema())
    wh.overwrite(truth_rows, "truth", run_id=metadata)
    c = plan.counts()
    edits = ", ".join(f"{n} {k}" for k, n in plan.edit_kinds.items())
    log(
        f"advance {day}: members {c['members_edited']} edited ({edits}) + {c['members_new']} "
        f"new - {c['members_deleted']} deleted; jobs {c['jobs_new']} new - {c['jobs_closed']} "
        "closed"
    )
    return {"applied": True, **c}


def _applied_at(wh: Warehouse, name: str, tag: str) -> int | None:
    """The first version carrying ``tag`` since the table was last written whole by anything
    but a day of churn (``generate``: a new world, where no day has happened yet)."""
    columns = ("version", "operation", "operationParameters", "userMetadata")
    history = wh.delta(name).history().select(*columns)
    first = None
    for row in sorted(history.collect(), key=lambda r: r.version):
        metadata = row.userMetadata or ""
        if metadata.endswith(f" {tag}"):
            first = row.version if first is None else first
        elif f" {TAG}" not in metadata and _rewrites_all(row):
            first = None
    return first


def _rewrites_all(row) -> bool:
    mode = (row.operationParameters or {}).get("mode", "")
    return row.operation.startswith(("CREATE", "REPLACE")) or (
        row.operation == "WRITE" and mode == "Overwrite"
    )


def _merge(
    spark: SparkSession,
    wh: Warehouse,
    name: str,
    edited: pd.DataFrame,
    new: pd.DataFrame,
    gone: list[str],
    *,
    metadata: str,
) -> None:
    """One MERGE on the table's key: update ``edited`` rows, delete ``gone`` ids, insert ``new``
    rows (which match nothing, null or duplicated ids included: they are new bad rows)."""
    if edited.empty and new.empty and not gone:
        return
    table = TABLES[name]
    key = table.names[0]
    deleted = pd.DataFrame({c: pd.Series([None] * len(gone), dtype=object) for c in table.names})
    deleted[key] = gone
    source = _concat(
        [edited.assign(_op="edit"), deleted.assign(_op="delete"), new.assign(_op="new")]
    )[[*table.names, "_op"]].astype(object)
    # The run id goes into the commit through a session of its own (Warehouse.insert_new).
    session = session_like(spark)
    session.conf.set("spark.databricks.delta.commitInfo.userMetadata", metadata)
    schema = table.spark_schema(enforce_nullability=False).add("_op", "string", False)
    values = {c: f"s.{c}" for c in table.names}
    rows = session.createDataFrame(source, schema)
    (
        DeltaTable.forPath(session, wh.path(name))
        .alias("t")
        .merge(rows.alias("s"), f"t.{key} = s.{key} AND s._op <> 'new'")
        .whenMatchedUpdate(condition="s._op = 'edit'", set=values)
        .whenMatchedDelete(condition="s._op = 'delete'")
        .whenNotMatchedInsert(condition="s._op = 'new'", values=values)
        .execute()
    )


def _as_lists(truth: pd.DataFrame) -> pd.DataFrame:
    """Array columns as Python lists (Spark reads them back as numpy arrays)."""
    out = truth.copy()
    for column in LIST_COLUMNS:
        out[column] = [list(v) for v in out[column]]
    return out

"""`policyrank candidates`: validate the inputs, block them into the date's top-K candidate
pairs (:mod:`jobs.pairs.blocking`), write them and account for every input row."""

from __future__ import annotations

import datetime as dt

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import incremental
from jobs.config.settings import Settings
from jobs.pairs.blocking import (
    candidate_pairs,
    incremental_pairs,
    job_cities,
    job_side,
    member_side,
)
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.tally import count_rows
from jobs.warehouse.validation import Inputs


def run(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    inputs: Inputs | None = None,
) -> dict:
    """Extract members and jobs (the run's ``inputs`` when given), validate, block; load
    `candidates` and `quarantine`."""
    wh = Warehouse.of(settings, spark)
    own = inputs is None
    if own:
        inputs = Inputs.read(wh, settings.validation).persist()
    passed_m, passed_j = inputs.valid

    counts = reconcile(inputs)
    cities = job_cities(passed_j)
    fingerprint = candidates_fingerprint(settings)
    changes, why = incremental.changes_since_last_day(
        wh, "candidates", run_date, inputs.versions, fingerprint, settings.incremental,
        output="candidates",
    )  # fmt: skip
    if changes and (crowd := too_many_changes(changes, counts, settings)):
        changes.release()
        changes, why = None, crowd
    counts["mode"] = f"incremental since {changes.since}" if changes else f"full ({why})"
    if changes:
        log(f"candidates: incremental {changes.describe()}")
        previous = wh.day("candidates", changes.since)
        found = incremental_pairs(
            passed_m, passed_j, previous, changes.members, changes.jobs, settings.candidates, cities
        )
    else:
        log(f"candidates: full run ({why})")
        found = candidate_pairs(passed_m, passed_j, settings.candidates, cities)
    # Pairs are kept: blocking runs once for both the guard's counts and the write.
    pairs = found.select(
        F.lit(run_date).alias("run_date"), "*", F.lit(run_id).alias("run_id")
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # Both guards pass before anything is written: a mismatch leaves the day as it was.
        counts.update(candidate_counts(passed_m, passed_j, pairs))
        check_members(counts)
        rejected = inputs.members.quarantined.unionByName(inputs.jobs.quarantined)
        wh.replace_quarantine(rejected, run_date, "candidates", run_id=run_id)
        wh.replace_day(pairs, "candidates", run_date, run_id=run_id)
        incremental.record(
            wh, "candidates", run_date, inputs.versions, fingerprint,
            changes=changes, reason=why, run_id=run_id,
        )  # fmt: skip
    finally:
        pairs.unpersist()
        if changes:
            changes.release()
    log(
        f"candidates: {counts['candidates']:,} pairs for {counts['members_with_candidates']:,} "
        f"members (top_k={settings.candidates.top_k}) -> {wh.path('candidates')}"
    )
    if own:
        inputs.unpersist()
    return counts


def candidates_fingerprint(settings: Settings) -> str:
    """What a day's candidates depend on besides the members and jobs themselves: the blocking
    and validation settings. (The job cities a summary is searched for change only with jobs:
    a new city comes with a changed job, which is blocked against every member; a city gone
    was the location key of no job left.)"""
    return incremental.fingerprint(
        candidates=vars(settings.candidates), validation=vars(settings.validation)
    )


def too_many_changes(changes: incremental.Changes, counts: dict, settings: Settings) -> str:
    """Why a day is blocked in full although it could start from the last one: past
    ``incremental.max_changed_share`` of the members or jobs changed (a re-import, a world
    rewritten), redoing them costs more than blocking everything. Else ''."""
    limit = settings.incremental.max_changed_share
    for table in ("members", "jobs"):
        changed, rows = changes.counts[table], counts[f"{table}_in"]
        if changed > limit * rows:
            return (
                f"{changed:,} of {rows:,} {table} changed since {changes.since}, over "
                f"incremental.max_changed_share {limit}"
            )
    return ""


def check_members(counts: dict) -> None:
    """Valid members = members with candidates + members without, by reason; else fail."""
    missing = counts["members_without_candidates"]
    status = (
        "ok"
        if counts["members_with_candidates"] + sum(missing.values()) == counts["members_passed"]
        else "MISMATCH"
    )
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(missing.items())) or "none"
    log(
        f"candidates: {counts['members_passed']:,} valid members = "
        f"{counts['members_with_candidates']:,} with candidates + {sum(missing.values()):,} "
        f"without ({reasons}) [{status}]; {counts['jobs_no_blocking_key']:,} valid jobs have "
        "no blocking key"
    )
    if status != "ok":
        raise RuntimeError(f"candidates: valid members do not reconcile: {counts}")


def candidate_counts(members: DataFrame, jobs: DataFrame, pairs: DataFrame) -> dict:
    """Pairs, members with candidates, and the valid rows that got none, by reason:
    ``no_blocking_key`` (no skill to block on, e.g. skills that are only separators) or
    ``no_matching_job`` (keys, but no job shares one). Jobs are counted when they have no
    blocking key, since they can never be a candidate. One Spark action."""
    with_any = pairs.select("member_id").distinct()
    lonely = member_side(members.join(with_any, "member_id", "left_anti"))
    no_key = F.size("keys") == 0
    reasons = {"no_blocking_key": lonely.where(no_key), "no_matching_job": lonely.where(~no_key)}
    counts = count_rows(
        {
            "candidates": pairs,
            "members_with_candidates": with_any,
            **reasons,
            "jobs_no_blocking_key": job_side(jobs).where(no_key),
        }
    )
    without = {reason: counts.pop(reason) for reason in reasons}
    return {**counts, "members_without_candidates": {k: n for k, n in without.items() if n}}


def reconcile(inputs: Inputs) -> dict:
    """Rows in, passed and quarantined per input table (one Spark action); fail loudly if they
    disagree."""
    frames = {}
    for name, raw, checked in (
        ("members", inputs.raw_members, inputs.members),
        ("jobs", inputs.raw_jobs, inputs.jobs),
    ):
        frames |= {
            f"{name}_in": raw,
            f"{name}_passed": checked.passed,
            f"{name}_quarantined": checked.quarantined,
        }
    counts = count_rows(frames)
    for name in ("members", "jobs"):
        n_in, n_ok, n_q = (counts[f"{name}_{part}"] for part in ("in", "passed", "quarantined"))
        status = "ok" if n_in == n_ok + n_q else "MISMATCH"
        log(f"candidates: {name}: {n_in:,} in = {n_ok:,} passed + {n_q:,} quarantined [{status}]")
        if n_in != n_ok + n_q:
            raise RuntimeError(f"{name}: {n_in} rows in but {n_ok} passed + {n_q} quarantined")
    return counts

"""Sampling: the (member, job) pairs the teacher labels for a date.

A share of the training members is drawn per day (a hash of member, seed and date, so a rerun
picks the same pairs and other days draw others); for each drawn member:

* ``candidate`` -- its whole candidate list, the ordering the student learns to re-rank;
* ``random`` -- half of a pool of random non-candidate pairs, whatever they look like;
* ``hard_negative`` -- from the other half, pairs that visibly breach a hard policy rule
  (``policy_bucket``: authorization, location, seniority, function), up to
  ``hard_negatives_per_bucket`` per bucket.

Held-out evaluation members and validation members (:mod:`jobs.quality.splits`) are never
drawn. Random pairs come from a
hash-bucket equi-join (a drawn member meets the jobs in its bucket), never from a cross product.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.config.settings import SamplingSettings, Settings
from jobs.pairs.blocking import seniority_index, skill_keys
from jobs.quality.splits import drawn, is_training

BUCKETS = ("authorization", "location", "seniority", "function")


def member_segments(members: DataFrame) -> DataFrame:
    """``member_id, stratum``: 'occupation|band|city' from the headline, seniority and location."""
    title = F.regexp_replace(F.lower("headline"), r"\s+at\s+.*$", "")
    occupation = F.trim(F.regexp_replace(title, r"^(junior|senior|staff|principal|lead)\s+", ""))
    band = (
        F.when(F.col("seniority").isin("entry", "mid"), "early")
        .when(F.col("seniority") == "senior", "senior")
        .otherwise("lead")
    )
    city = F.trim(F.split("location", ",").getItem(0))
    return members.select(
        "member_id", F.concat_ws("|", occupation, band, F.lower(city)).alias("stratum")
    )


def pair_hash(seed: int) -> Column:
    return F.xxhash64("member_id", "job_id", F.lit(seed))


def policy_bucket(m: str = "m", j: str = "j") -> Column:
    """The first hard rule a pair visibly breaks, from declared fields only, else 'none'."""
    job_country = F.trim(F.element_at(F.split(F.col(f"{j}.location"), ","), -1))
    authorized = F.array_contains(
        F.transform(F.split(F.coalesce(F.col(f"{m}.work_authorization"), F.lit("")), ","), F.trim),
        job_country,
    )
    remote_job = F.col(f"{j}.workplace_type") == "remote"
    same_city = F.lower(F.col(f"{m}.location")) == F.lower(F.col(f"{j}.location"))
    remote_only = F.col(f"{m}.remote_preference") == "remote"
    gap = F.abs(seniority_index(f"{m}.seniority") - seniority_index(f"{j}.seniority"))
    shared = F.size(F.array_intersect(skill_keys(f"{m}.skills"), skill_keys(f"{j}.skills")))
    return (
        F.when(
            ~authorized & ~F.coalesce(F.col(f"{j}.visa_sponsorship"), F.lit(False)), "authorization"
        )
        .when(~remote_job & (~same_city | remote_only), "location")
        .when(gap >= 2, "seniority")
        .when(shared == 0, "function")
        .otherwise("none")
    )


def sample_pairs(
    candidates: DataFrame,
    members: DataFrame,
    jobs: DataFrame,
    conf: SamplingSettings,
    *,
    salt: str = "",
    exclude: DataFrame | None = None,
) -> DataFrame:
    """``member_id, job_id, source, stratum, policy_bucket`` (pure: DataFrames in and out).

    ``salt`` joins the seed in the member draw (the run date, so each day draws other members);
    members in ``exclude`` (a ``member_id`` frame, e.g. held-out members) are never drawn.
    """
    segments = member_segments(members)
    pool = members if exclude is None else members.join(exclude, "member_id", "left_anti")
    drawn_members = pool.where(drawn("member_id", conf.seed, conf.members_share, salt))
    lists = (
        candidates.select("member_id", "job_id")
        .join(drawn_members.select("member_id"), "member_id")
        .select("member_id", "job_id", F.lit("candidate").alias("source"))
    )
    n_jobs = jobs.count()
    buckets = max(1, n_jobs // max(conf.random_jobs_per_member, 1))
    by_member = drawn_members.withColumn(
        "_b", F.pmod(F.xxhash64("member_id", F.lit(conf.seed + 1), F.lit(salt)), F.lit(buckets))
    )
    bucketed_jobs = jobs.withColumn(
        "_b", F.pmod(F.xxhash64("job_id", F.lit(conf.seed + 2), F.lit(salt)), F.lit(buckets))
    )
    random_pool = (
        by_member.alias("m")
        .join(bucketed_jobs.alias("j"), "_b")
        .select("m.member_id", "j.job_id", policy_bucket().alias("policy_bucket"))
        .join(candidates.select("member_id", "job_id"), ["member_id", "job_id"], "left_anti")
    )
    # Half the pool (by pair hash) stays a plain random slice, whatever its bucket; the other
    # half feeds the hard negatives, capped per policy bucket.
    in_random = F.pmod(pair_hash(conf.seed + 3), F.lit(2)) == 0
    by_bucket = Window.partitionBy("policy_bucket").orderBy(
        pair_hash(conf.seed), "member_id", "job_id"
    )
    ordinary = random_pool.where(in_random).select(
        "member_id", "job_id", F.lit("random").alias("source")
    )
    hard = (
        random_pool.where(~in_random & (F.col("policy_bucket") != "none"))
        .withColumn("_n", F.row_number().over(by_bucket))
        .where(F.col("_n") <= conf.hard_negatives_per_bucket)
        .select("member_id", "job_id", F.lit("hard_negative").alias("source"))
    )
    sampled = lists.unionByName(hard).unionByName(ordinary).join(segments, "member_id")
    # Every sampled pair, candidate or not, carries its policy bucket.
    return with_policy_bucket(sampled, members, jobs).dropDuplicates(["member_id", "job_id"])


def with_policy_bucket(pairs: DataFrame, members: DataFrame, jobs: DataFrame) -> DataFrame:
    """``member_id, job_id, source, stratum, policy_bucket`` of ``pairs`` (which carry
    ``member_id, job_id, source, stratum``)."""
    return (
        pairs.alias("p")
        .join(members.alias("m"), F.col("p.member_id") == F.col("m.member_id"))
        .join(jobs.alias("j"), F.col("p.job_id") == F.col("j.job_id"))
        .select(
            "p.member_id",
            "p.job_id",
            "p.source",
            "p.stratum",
            policy_bucket().alias("policy_bucket"),
        )
    )


def untrained_members(members: DataFrame, settings: Settings) -> DataFrame:
    """``member_id`` of the members no teacher labels: held-out and validation members."""
    return members.select("member_id").where(~is_training(settings.eval))

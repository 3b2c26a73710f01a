"""Candidate blocking: block members and jobs into top-K candidate pairs, no cross product.

Blocking keys are (key, location key) where a key is a normalised skill or the occupation family
a title names (:data:`udfs.policy_rules.FAMILY_WORDS`). Skills are written many ways ("k8s",
"Kubernetes") and sometimes only in a profile's prose, so exact skill keys alone miss good pairs;
the family key (a "Software Engineer" meets every software post in its location) catches them,
and it is small: a good match needs the same family (policy section 3.1).

A member's location keys are its own city plus ``REMOTE`` (only ``REMOTE`` when the member wants
remote work only), plus any job city its summary names (a move or a relocation stated in prose);
a job has ``REMOTE`` when it is remote, else its city. Exploding both sides on those keys and
joining on equality means only pairs that share a key *and* a location key are ever formed (an
equi-join, never a cartesian).

Cost: the join emits ``sum over keys of members(key) * jobs(key)`` rows, roughly
``M * J * (s_m * s_j / V + 1 / F) * l / L`` for M members, J jobs, s skills per member/job, V
distinct skills, F families, L location keys and l location keys per member; aggregation and the
top-K window then cost ``O(P log K)`` for those P rows. See docs/candidates.md for figures.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.config.settings import CandidateSettings
from schemas.vocab import SENIORITY_LEVELS
from udfs.policy_rules import FAMILY_ORDER, FAMILY_WORDS

REMOTE = "REMOTE"
FAMILY_PREFIX = "family:"


def skill_keys(col: str) -> Column:
    """Normalised, distinct, non-empty skills of a comma-separated list (case, punctuation and
    spacing ignored, as the rules baseline does)."""
    skills = F.transform(F.split(F.col(col), ","), _normalised)
    return F.array_distinct(F.filter(skills, lambda s: s != ""))


def _normalised(text: Column) -> Column:
    return F.trim(F.regexp_replace(F.lower(text), "[^0-9a-z]+", " "))


def title_family(col: str) -> Column:
    """The occupation family a title's words name (the employer after ' at ' dropped), else
    null: :func:`udfs.policy_rules.family` in Spark. Each word looks up its family's place in
    ``FAMILY_ORDER`` in one map; the first place wins."""
    title = F.split(F.col(col), r"\s+at\s+").getItem(0)
    words = F.split(_normalised(title), " ")
    place: dict[str, int] = {}
    for rank, name in enumerate(FAMILY_ORDER):
        for word in FAMILY_WORDS[name]:
            place.setdefault(word, rank)
    lookup = F.create_map(*[F.lit(x) for word, rank in sorted(place.items()) for x in (word, rank)])
    ranks = F.filter(F.transform(words, lambda w: F.element_at(lookup, w)), lambda r: r.isNotNull())
    names = F.array(*[F.lit(name) for name in FAMILY_ORDER])
    return F.when(F.size(ranks) > 0, F.element_at(names, F.array_min(ranks) + 1))


def seniority_index(col: str) -> Column:
    return F.array_position(F.array(*[F.lit(s) for s in SENIORITY_LEVELS]), F.col(col)) - 1


def _keys(skills: Column, family: Column) -> Column:
    with_family = F.array_union(skills, F.array(F.concat(F.lit(FAMILY_PREFIX), family)))
    return F.when(family.isNull(), skills).otherwise(with_family)


def member_side(members: DataFrame, cities: list[str] = ()) -> DataFrame:
    """``member_id, skills, family, keys, m_level, loc_keys``: location keys are the member's
    city and REMOTE (REMOTE only if remote-only), plus the ``cities`` (job locations, lower
    case) the summary names."""
    summary = F.lower(F.coalesce(F.col("summary"), F.lit("")))
    named = [F.when(summary.contains(c.split(",")[0]), F.lit(c)) for c in cities]
    own = F.array(F.lower("location"), F.lit(REMOTE), *named)
    return members.select(
        "member_id",
        skill_keys("skills").alias("skills"),
        title_family("headline").alias("family"),
        seniority_index("seniority").alias("m_level"),
        F.when(F.col("remote_preference") == "remote", F.array(F.lit(REMOTE)))
        .otherwise(F.array_distinct(F.filter(own, lambda c: c.isNotNull())))
        .alias("loc_keys"),
    ).withColumn("keys", _keys(F.col("skills"), F.col("family")))


def job_side(jobs: DataFrame) -> DataFrame:
    """``job_id, skills, family, keys, j_level, loc_key`` (REMOTE for remote jobs, else the
    city)."""
    return jobs.select(
        "job_id",
        skill_keys("skills").alias("skills"),
        title_family("title").alias("family"),
        seniority_index("seniority").alias("j_level"),
        F.when(F.col("workplace_type") == "remote", F.lit(REMOTE))
        .otherwise(F.lower("location"))
        .alias("loc_key"),
    ).withColumn("keys", _keys(F.col("skills"), F.col("family")))


def job_cities(jobs: DataFrame) -> list[str]:
    """The on-site and hybrid job locations, lower case: the cities a summary may name."""
    rows = jobs.where(F.col("workplace_type") != "remote").select(F.lower("location")).distinct()
    return sorted(r[0] for r in rows.collect() if r[0])


def blocked_rows(m: DataFrame, j: DataFrame) -> DataFrame:
    """The equi-join on (key, location key): one row per shared key of a compatible pair."""
    m_keys = m.select("member_id", "keys", F.explode("loc_keys").alias("loc_key")).select(
        "member_id", F.explode("keys").alias("key"), "loc_key"
    )
    j_keys = j.select("job_id", F.explode("keys").alias("key"), "loc_key")
    return m_keys.join(j_keys, ["key", "loc_key"])


def candidate_pairs(
    members: DataFrame,
    jobs: DataFrame,
    conf: CandidateSettings,
    cities: list[str] | None = None,
) -> DataFrame:
    """Top-``conf.top_k`` jobs per member by a cheap prefilter, from validated members and jobs.

    Returns ``member_id, job_id, shared_keys, prefilter_score, prefilter_rank``. The prefilter is
    ``skill_weight * (shared skills / job's skills) + (1 - skill_weight) * seniority fit`` where
    seniority fit is ``1 - |level gap| / 4``; ties break on job_id so the result is deterministic.
    ``cities`` are :func:`job_cities` of ``jobs`` (computed when not given).
    """
    m = member_side(members, job_cities(jobs) if cities is None else cities)
    return top_k(prefilter_pairs(m, job_side(jobs), conf), conf.top_k)


def prefilter_pairs(m: DataFrame, j: DataFrame, conf: CandidateSettings) -> DataFrame:
    """Every blocked pair of the member and job sides with its prefilter score:
    ``member_id, job_id, shared_keys, prefilter_score``."""
    is_skill = ~F.col("key").startswith(FAMILY_PREFIX)
    shared = (
        blocked_rows(m, j)
        .groupBy("member_id", "job_id")
        .agg(
            F.count_distinct("key").cast("int").alias("shared_keys"),
            F.count_distinct(F.when(is_skill, F.col("key"))).alias("shared_skills"),
        )
    )
    return (
        shared.join(m.select("member_id", "m_level"), "member_id")
        .join(j.select("job_id", "j_level", F.size("skills").alias("j_skills")), "job_id")
        .select(
            "member_id",
            "job_id",
            "shared_keys",
            (
                conf.skill_weight * F.col("shared_skills") / F.greatest(F.col("j_skills"), F.lit(1))
                + (1 - conf.skill_weight) * (1 - F.abs(F.col("m_level") - F.col("j_level")) / 4)
            ).alias("prefilter_score"),
        )
    )


def top_k(pairs: DataFrame, k: int) -> DataFrame:
    """The best ``k`` pairs per member by prefilter score (ties: job_id), ranked 1..k."""
    best_first = Window.partitionBy("member_id").orderBy(F.desc("prefilter_score"), "job_id")
    return (
        pairs.withColumn("prefilter_rank", F.row_number().over(best_first).cast("int"))
        .where(F.col("prefilter_rank") <= k)
        .select("member_id", "job_id", "shared_keys", "prefilter_score", "prefilter_rank")
    )


def incremental_pairs(
    members: DataFrame,
    jobs: DataFrame,
    previous: DataFrame,
    changed_members: DataFrame,
    changed_jobs: DataFrame,
    conf: CandidateSettings,
    cities: list[str],
) -> DataFrame:
    """:func:`candidate_pairs` of today's ``members`` and ``jobs``, from the ``previous`` day's
    candidates and the ids changed since (inserted, updated or deleted), with the same settings
    and ``cities``; equal to a full run row for row.

    A member is blocked against every job again when it changed, or when its previous list was
    full (``top_k`` pairs) and lost a job (changed or closed): the job that would take the freed
    place was never kept. Every other member keeps its previous pairs with unchanged jobs, plus
    its blocked pairs with the changed jobs, and the top-K is taken again. A list shorter than
    ``top_k`` held every blocked pair, so nothing outside it can enter; a full list that lost
    nothing holds the top-K of the unchanged jobs. Prefilter scores are pure functions of the
    member and the job, so the kept ones equal a recomputation.
    """
    m_all, j_all = member_side(members, cities), job_side(jobs)
    kept = previous.join(changed_members, "member_id", "left_anti")
    lost = kept.join(changed_jobs, "job_id", "left_semi").select("member_id").distinct()
    full = kept.groupBy("member_id").count().where(F.col("count") >= conf.top_k)
    redo = changed_members.unionByName(lost.join(full, "member_id", "left_semi")).distinct()
    redone = prefilter_pairs(m_all.join(redo, "member_id", "left_semi"), j_all, conf)
    others = m_all.join(redo, "member_id", "left_anti")
    with_changed_jobs = prefilter_pairs(
        others, j_all.join(changed_jobs, "job_id", "left_semi"), conf
    )
    carried = (
        kept.join(redo, "member_id", "left_anti")
        .join(changed_jobs, "job_id", "left_anti")
        .select("member_id", "job_id", "shared_keys", "prefilter_score")
    )
    return top_k(redone.unionByName(with_changed_jobs).unionByName(carried), conf.top_k)

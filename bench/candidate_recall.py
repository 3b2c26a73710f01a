"""Candidate join: recall of truly good pairs and rows the join emits, for several top_k.

    python bench/candidate_recall.py                       # the default sample (conf/local.yaml)
    python bench/candidate_recall.py world.members=20000 world.jobs=5000

Builds the world in memory (nothing is written), validates it, runs the candidate join and
compares with every pair whose true grade is >= 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time

from jobs.config.settings import load_settings
from jobs.pairs.blocking import blocked_rows, candidate_pairs, job_side, member_side
from jobs.runtime.spark_session import build_spark
from jobs.warehouse.validation import JOB_RULES, MEMBER_RULES, validate_rows
from sim import world
from sim.generate import generate_world


def join_rows(members, jobs) -> int:
    """Rows the (skill, location) equi-join emits before aggregation: the join's real cost."""
    return blocked_rows(member_side(members), job_side(jobs)).count()


def main(overrides: list[str]) -> None:
    settings = load_settings(None, overrides)
    spark = build_spark(settings.spark)
    frames = generate_world(spark, settings.world)
    limit = settings.validation.max_text_chars
    members = validate_rows(frames["members"], MEMBER_RULES, max_text_chars=limit).passed.cache()
    jobs = validate_rows(frames["jobs"], JOB_RULES, max_text_chars=limit).passed.cache()
    m_ids = [r.member_id for r in members.select("member_id").collect()]
    j_ids = [r.job_id for r in jobs.select("job_id").collect()]
    good = world.good_pairs(frames["truth"].toPandas(), m_ids, j_ids)
    print(
        f"machine: {platform.processor() or platform.machine()}, Spark {spark.version}, "
        f"{settings.spark.master}"
    )
    print(
        f"world: {len(m_ids):,} valid members x {len(j_ids):,} valid jobs = "
        f"{len(m_ids) * len(j_ids):,} possible pairs; {len(good):,} with true grade >= 3"
    )
    print(f"join rows before aggregation: {join_rows(members, jobs):,}")
    print("\n| top_k | candidates | share of all pairs | recall of grade>=3 | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for k in (5, 10, 20, 50):
        conf = dataclasses.replace(settings.candidates, top_k=k)
        start = time.perf_counter()
        kept = candidate_pairs(members, jobs, conf).select("member_id", "job_id").toPandas()
        secs = time.perf_counter() - start
        recall = len(good.merge(kept)) / max(len(good), 1)
        share = len(kept) / (len(m_ids) * len(j_ids))
        print(f"| {k} | {len(kept):,} | {share:.2%} | {recall:.3f} | {secs:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings overrides")
    main(parser.parse_args(sys.argv[1:]).overrides)

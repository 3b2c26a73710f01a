"""`policyrank generate` (simulator): write the world (members, jobs, truth) as Delta tables."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from jobs.config.settings import Settings, WorldSettings
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.tally import count_rows
from schemas.tables import JOBS, MEMBERS, TRUTH
from sim import render, world


def generate_world(spark: SparkSession, conf: WorldSettings) -> dict[str, DataFrame]:
    """The world as DataFrames: ``members``, ``jobs`` (text, with bad rows) and ``truth``."""
    seed, share, injected = conf.seed, conf.bad_row_share, conf.injection_share

    def members(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in chunks:
            for c in frame["id"]:
                yield render.render_members(
                    world.member_latents(seed, c, conf.members),
                    seed,
                    c,
                    share,
                    injection_share=injected,
                )

    def jobs(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in chunks:
            for c in frame["id"]:
                yield render.render_jobs(
                    world.job_latents(seed, c, conf.jobs), seed, c, share, injection_share=injected
                )

    def truth(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in chunks:
            for c, entity in zip(frame["id"], frame["entity"], strict=True):
                if entity == "member":
                    yield world.member_latents(seed, c, conf.members)
                else:
                    yield world.job_latents(seed, c, conf.jobs)

    def chunk_ids(total: int) -> DataFrame:
        n = math.ceil(total / world.CHUNK)
        return spark.range(0, n, numPartitions=max(1, min(conf.partitions, n)))

    raw_members, raw_jobs = (
        MEMBERS.spark_schema(enforce_nullability=False),
        JOBS.spark_schema(enforce_nullability=False),
    )
    entity_chunks = (
        chunk_ids(conf.members)
        .selectExpr("id", "'member' AS entity")
        .unionByName(chunk_ids(conf.jobs).selectExpr("id", "'job' AS entity"))
    )
    return {
        "members": chunk_ids(conf.members).mapInPandas(members, raw_members),
        "jobs": chunk_ids(conf.jobs).mapInPandas(jobs, raw_jobs),
        "truth": entity_chunks.mapInPandas(truth, TRUTH.spark_schema()),
    }


def run(spark: SparkSession, settings: Settings, *, run_id: str) -> dict[str, int]:
    conf = settings.world
    log(
        f"generate: {conf.members:,} members x {conf.jobs:,} jobs, seed {conf.seed}, "
        f"bad-row share {conf.bad_row_share}"
    )
    frames = generate_world(spark, conf)
    wh = Warehouse.of(settings, spark)
    for name in ("members", "jobs", "truth"):
        wh.overwrite(frames[name], name, run_id=run_id)
    counts = count_rows({name: wh.read(name, hint="") for name in frames})
    for name, rows in counts.items():
        log(f"generate: wrote {rows:,} rows to {wh.path(name)}")
    return counts

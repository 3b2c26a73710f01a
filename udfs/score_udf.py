"""The Spark side of scoring: a thin iterator pandas UDF over :mod:`udfs.cross_encoder`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udfs.cross_encoder import PreparedPairs, ScorerConfig, scorer_for
from udfs.devices import task_gpu_addresses
from udfs.overlap import map_ahead


def score_pairs_udf(config: ScorerConfig):
    """Build a pandas UDF that scores (member, job) pairs with the cross-encoder in ``config``.

    The UDF takes two struct columns, the member's fields and the job's fields (the names the
    templates in ``config`` use), and returns a float score per row. Each Python worker loads the
    model once (on the GPU its task was given, if CUDA is present) and keeps it across tasks
    (:mod:`udfs.worker_cache`). Within an Arrow batch each distinct member and job text is
    tokenized once and pairs are assembled from token ids (:mod:`udfs.pair_tokens`), sorted by
    length and batched by the device's token budget. On a GPU the next Arrow batch is tokenized
    in a background thread while the device scores the current one.

    Example::

        score = score_pairs_udf(ScorerConfig("models/student", "{headline}", "{title}"))
        pairs.withColumn("score", score(F.struct("headline"), F.struct("title")))
    """

    @F.pandas_udf(T.FloatType())
    def score_pairs(batches: Iterator[tuple[pd.DataFrame, pd.DataFrame]]) -> Iterator[pd.Series]:
        scorer = scorer_for(config, task_gpu_addresses())

        def prepare(frames: tuple[pd.DataFrame, pd.DataFrame]) -> PreparedPairs:
            return scorer.prepare_frames(*frames, config.member_template, config.job_template)

        on_gpu = scorer.placement.device != "cpu"
        for pairs in map_ahead(prepare, batches, enabled=on_gpu):
            yield pd.Series(scorer.score_prepared(pairs))

    return score_pairs


@dataclass(frozen=True)
class TaskResources:
    """What each task of a model stage asks for (Spark stage-level scheduling); ``None`` leaves
    the cluster-wide ``spark.task.cpus`` / ``spark.task.resource.gpu.amount``."""

    cpus: int | None = None
    gpus: float | None = None


def with_task_resources(df: DataFrame, resources: TaskResources | None) -> DataFrame:
    """``df``, computed by tasks that each hold ``resources`` (stage-level scheduling).

    A pass-through ``mapInArrow`` carries a task ``ResourceProfile``; it runs in the same stage
    as the model UDF that produced ``df`` (no shuffle between), so that whole stage is scheduled
    with the profile: e.g. a GPU and 4 cores for scoring while the joins before it run on
    plain CPU task slots. Spark supports task profiles on standalone, YARN and Kubernetes
    clusters with dynamic allocation off, and refuses them in local mode. Without resources
    ``df`` is returned as is.

    Example::

        scored = with_task_resources(scored, TaskResources(cpus=4, gpus=1))
    """
    if resources is None or (resources.cpus is None and resources.gpus is None):
        return df
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    requests = TaskResourceRequests()
    if resources.cpus is not None:
        requests = requests.cpus(resources.cpus)
    if resources.gpus is not None:
        requests = requests.resource("gpu", resources.gpus)
    profile = ResourceProfileBuilder().require(requests).build
    return df.mapInArrow(_same_batches, df.schema, profile=profile)


def _same_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield from batches

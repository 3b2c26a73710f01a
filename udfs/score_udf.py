"""The Spark side of scoring: a thin iterator pandas UDF over :mod:`udfs.cross_encoder`."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udfs.cross_encoder import ScorerConfig, scorer_for
from udfs.devices import task_gpu_addresses


def score_pairs_udf(config: ScorerConfig):
    """Build a pandas UDF that scores (member, job) pairs with the cross-encoder in ``config``.

    The UDF takes two struct columns, the member's fields and the job's fields (the names the
    templates in ``config`` use), and returns a float score per row. Each Python worker loads the
    model once (on the GPU its task was given, if CUDA is present) and keeps it across tasks;
    within an Arrow batch pairs are sorted by length and batched by ``config.token_budget``.

    Example::

        score = score_pairs_udf(ScorerConfig("models/student", "{headline}", "{title}"))
        pairs.withColumn("score", score(F.struct("headline"), F.struct("title")))
    """

    @F.pandas_udf(T.FloatType())
    def score_pairs(batches: Iterator[tuple[pd.DataFrame, pd.DataFrame]]) -> Iterator[pd.Series]:
        scorer = scorer_for(config, task_gpu_addresses())
        for members, jobs in batches:
            yield pd.Series(
                scorer.score_frames(members, jobs, config.member_template, config.job_template)
            )

    return score_pairs


def fields_struct(prefix_free_names: list[str], alias_from: str) -> Column:
    """``struct(alias.col AS col, ...)`` for the given columns of a joined DataFrame."""
    return F.struct(*[F.col(f"{alias_from}.{c}").alias(c) for c in prefix_free_names])

"""The Spark side of labelling: a thin iterator pandas UDF over :mod:`udfs.teacher`."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql import types as T

from udfs.devices import task_gpu_addresses
from udfs.teacher import TeacherConfig, distribution_frame, grade_frames, teacher_for

LABEL_TYPE = T.StructType(
    [
        T.StructField("grade_probs", T.ArrayType(T.FloatType(), containsNull=False)),
        T.StructField("expected_grade", T.DoubleType()),
        T.StructField("grade", T.IntegerType()),
        T.StructField("entropy", T.DoubleType()),
    ]
)


def teacher_labels_udf(config: TeacherConfig):
    """Build a pandas UDF that grades (member, job) pairs with the teacher in ``config``.

    Takes two struct columns, the member's and the job's fields (``config.fields()`` plus the
    ``member_id``/``job_id`` keys), and returns a struct ``grade_probs`` (p of grades 0-4),
    ``expected_grade``,
    ``grade`` (argmax) and ``entropy``. Like the scoring UDF, each Python worker loads the teacher
    once, on the GPU its task was given when CUDA is present, and keeps it across tasks.

    Example::

        label = teacher_labels_udf(TeacherConfig("cross_encoder", "models/judge",
                                                 "{headline}", "{title}"))
        pairs.withColumn("label", label(F.struct("headline"), F.struct("title")))
    """

    @F.pandas_udf(LABEL_TYPE)
    def teacher_labels(
        batches: Iterator[tuple[pd.DataFrame, pd.DataFrame]],
    ) -> Iterator[pd.DataFrame]:
        teacher = teacher_for(config, task_gpu_addresses())
        for members, jobs in batches:
            yield distribution_frame(grade_frames(teacher, members, jobs))

    return teacher_labels

"""One way to build a SparkSession with Delta Lake, for the CLI, spark-submit and tests.

Delta's JARs come the standard way: ``configure_spark_with_delta_pip`` adds
``io.delta:delta-spark_2.13:<delta-spark version>`` to ``spark.jars.packages`` and Ivy resolves it
from Maven Central on the first start, caching it under ``~/.ivy2.5.2`` (Spark 4).
"""

from __future__ import annotations

import os
import sys

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession

from jobs.settings import SparkSettings


def build_spark(conf: SparkSettings) -> SparkSession:
    """Return the active SparkSession, or start one from ``conf`` with Delta enabled.

    Under ``spark-submit`` on a cluster the master comes from the submit command; ``conf.master``
    only applies when no master was given there.
    """
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    # Python workers must run the driver's interpreter (the venv policyrank is installed in),
    # not whatever `python3` is first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(conf.app_name)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(conf.arrow_batch_rows))
        # Keep Python workers (and the model each one caches) alive between tasks.
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if not _under_spark_submit():
        builder = (
            builder.master(conf.master)
            .config("spark.driver.memory", conf.driver_memory)
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
        )
    for key, value in conf.extra.items():
        builder = builder.config(key, str(value))
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _under_spark_submit() -> bool:
    """spark-submit starts the Python driver itself and hands it a gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ

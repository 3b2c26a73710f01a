"""One way to build a SparkSession with Delta Lake, for the CLI, spark-submit and tests.

Delta's JARs come the standard way: ``configure_spark_with_delta_pip`` adds
``io.delta:delta-spark_4.1_2.13:<delta-spark version>`` to ``spark.jars.packages`` and Ivy
resolves it from Maven Central on the first start, caching it under ``~/.ivy2.5.2`` (Spark 4).
Under spark-submit the JVM is already running, so the package must be on the submit command.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession

from jobs.config.settings import SparkSettings
from jobs.runtime.errors import PolicyrankError
from udfs import worker_daemon

# Delta's SQL extension and catalog: for the jobs' sessions and spark-sql's properties file.
DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


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
        .config(map=DELTA_SQL_CONF)
        .config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(conf.arrow_batch_rows))
        # Keep Python workers (and the model each one caches) alive between tasks.
        .config("spark.python.worker.reuse", "true")
        # Fork workers from a daemon that has imported torch and transformers already: a fresh
        # worker (the first, or one after a minute idle) then starts in a fraction of a second.
        .config("spark.python.daemon.module", worker_daemon.__name__)
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
    _require_delta(spark)
    return spark


def delta_package() -> str:
    """The Maven coordinate of the Delta JAR matching the installed pyspark and delta-spark."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{metadata.version('delta-spark')}"


def _require_delta(spark: SparkSession) -> None:
    try:
        # --packages JARs live in Spark's context class loader, not the system one.
        loader = spark._jvm.java.lang.Thread.currentThread().getContextClassLoader()
        loader.loadClass("io.delta.sql.DeltaSparkSessionExtension")
    except Exception as err:  # py4j wraps ClassNotFoundException
        raise PolicyrankError(
            f"Delta Lake is not on this Spark's classpath: pass --packages {delta_package()} "
            "to spark-submit (or let policyrank start Spark itself)"
        ) from err


def _under_spark_submit() -> bool:
    """spark-submit starts the Python driver itself and hands it a gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ

"""Logs never print member text: a sentinel planted in every profile and job post must not
appear in anything the steps that read the text print (the validation in `candidates`, the
scoring UDF in `score`). The Spark side (JVM, executors, Python workers) is checked the same way
by ``tests/test_gpu_placement.py``, whose pairs carry the sentinel too. Errors about bad input
name tables and columns only (``tests/test_input_contract.py`` checks their exact wording)."""

import shutil

from pyspark.sql import functions as F

from jobs.cli import main
from tests.conftest import DAY, cookbook_args

SENTINEL = "ZQX-sentinel-7f3a"


def _plant(spark, warehouse, table, columns):
    """Append the sentinel to free-text columns of every row (one rewrite of the snapshot)."""
    path = f"{warehouse}/{table}"
    df = spark.read.format("delta").load(path)
    for col in columns:
        df = df.withColumn(col, F.concat_ws(" ", F.col(col), F.lit(SENTINEL)))
    df.localCheckpoint().write.format("delta").mode("overwrite").save(path)


def test_the_steps_that_read_text_never_print_it(spark, cookbook, tmp_path, capfd):
    warehouse = tmp_path / "warehouse"
    shutil.copytree(cookbook, warehouse)
    _plant(spark, warehouse, "members", ["headline", "summary", "skills"])
    _plant(spark, warehouse, "jobs", ["title", "description"])
    planted = spark.read.format("delta").load(f"{warehouse}/members")
    assert planted.where(F.col("summary").contains(SENTINEL)).count() == planted.count()
    capfd.readouterr()
    for step in ("candidates", "score"):
        main([step, "--date", DAY, *cookbook_args(warehouse)])
    out = capfd.readouterr()
    printed = out.out + out.err
    assert "candidates: members:" in printed and "score: " in printed  # the steps ran
    scores = spark.read.format("delta").load(f"{warehouse}/scores").where(F.col("run_date") == DAY)
    assert scores.count() > 0
    assert SENTINEL not in printed

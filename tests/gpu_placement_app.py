"""Spark application run by tests/test_gpu_placement.py against a standalone master.

Run in its own process (own JVM and SparkContext), because GPU scheduling needs a cluster
manager: local mode ignores ``spark.task.resource.gpu.amount``. It scores pairs with the real
score UDF and, in the same tasks, records each task's GPU addresses, device, pid and time span
with a ``mapInPandas`` probe; then once more with a stage-level task profile asking for both
GPUs (``udfs.score_udf.with_task_resources``). Prints one line ``GPU_PLACEMENT_RESULT <json>``
to stdout.

    python tests/gpu_placement_app.py --master spark://127.0.0.1:7077 --discovery-script gpus.sh
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests` is not an installed package; `udfs` and `jobs` are
    sys.path.insert(0, str(REPO))

from pyspark import TaskContext  # noqa: E402
from pyspark.sql import Column, DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from tests.tiny_models import build_tiny_cross_encoder  # noqa: E402
from udfs import worker_daemon  # noqa: E402
from udfs.cross_encoder import CrossEncoderScorer, ScorerConfig, scorer_for  # noqa: E402
from udfs.devices import Placement, task_gpu_addresses  # noqa: E402
from udfs.score_udf import TaskResources, score_pairs_udf, with_task_resources  # noqa: E402

RESULT_PREFIX = "GPU_PLACEMENT_RESULT "
SENTINEL = "ZQX-sentinel-7f3a"  # member text: must never reach a log (test_gpu_placement.py)
HEADLINES = ["senior data engineer", "junior engineer", "staff engineer at acme", "principal"]
HEADLINES = [f"{h} {SENTINEL}" for h in HEADLINES]
TITLES = ["data engineer", "engineer", "senior staff engineer location", "skills engineer at"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--master", required=True)
    p.add_argument("--discovery-script", required=True)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--rows-per-partition", type=int, default=5)
    p.add_argument("--sleep-s", type=float, default=1.0, help="per-task pause, so tasks overlap")
    return p.parse_args(argv)


def build_spark(args: argparse.Namespace) -> SparkSession:
    # Executors must run this interpreter (the venv that has torch and policyrank installed).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    spark = (
        SparkSession.builder.master(args.master)
        .appName("policyrank-gpu-placement-test")
        # One executor with 2 cores and 2 GPUs; each task takes 1 core and 1 GPU, so two tasks
        # run at once and Spark must hand them different GPU addresses.
        .config("spark.executor.cores", "2")
        .config("spark.cores.max", "2")
        .config("spark.executor.memory", "1g")
        .config("spark.task.cpus", "1")
        .config("spark.executor.resource.gpu.amount", "2")
        .config("spark.task.resource.gpu.amount", "1")
        # Standalone executors get their addresses from the worker; the script is the fallback.
        .config("spark.executor.resource.gpu.discoveryScript", args.discovery_script)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        # short-lived JVMs warm up faster with C1 alone (test speed only)
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1")
        .config("spark.executor.extraJavaOptions", "-XX:TieredStopAtLevel=1")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.python.worker.reuse", "true")
        # As the jobs' sessions: workers fork from a daemon with torch already imported.
        .config("spark.python.daemon.module", worker_daemon.__name__)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Several Arrow batches per task exercise the UDF's iterator and its order keeping.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2")
        # Two torch workers on two cores: one thread each, or they thrash.
        .config("spark.executorEnv.OMP_NUM_THREADS", "1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    return spark


def make_pairs(partitions: int, rows_per_partition: int) -> pd.DataFrame:
    rows = [
        (i, f"{HEADLINES[i % len(HEADLINES)]} {i}", f"{TITLES[(i // 3) % len(TITLES)]} {i % 7}")
        for i in range(partitions * rows_per_partition)
    ]
    return pd.DataFrame(rows, columns=["id", "headline", "title"])


def pairs_frame(spark: SparkSession, rows: int, partitions: int) -> DataFrame:
    """:func:`make_pairs` built in the JVM: ``range`` gives exactly ``partitions`` tasks with no
    shuffle, and no Python worker (an RDD of Python rows would start a second worker daemon, as
    Python RDDs and SQL UDFs do not share one). The two must agree: the scores test compares the
    UDF's score of each row with the core's score of ``make_pairs``' row."""

    def pick(options: list[str], index: Column) -> Column:
        return F.element_at(F.array(*map(F.lit, options)), (index % len(options) + 1).cast("int"))

    i = F.col("id")
    return spark.range(0, rows, 1, numPartitions=partitions).select(
        i,
        F.concat_ws(" ", pick(HEADLINES, i), i.cast("string")).alias("headline"),
        F.concat_ws(" ", pick(TITLES, F.floor(i / 3)), (i % 7).cast("string")).alias("title"),
    )


def scored_with_probe(
    spark: SparkSession,
    pairs: pd.DataFrame,
    config: ScorerConfig,
    partitions: int,
    sleep_s: float,
    resources: TaskResources | None = None,
) -> DataFrame:
    score = score_pairs_udf(config)
    scored = pairs_frame(spark, len(pairs), partitions).select(
        "id", score(F.struct("headline"), F.struct("title")).alias("score")
    )
    scored = with_task_resources(scored, resources)

    def probe(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # Runs in the same task as the score UDF (same stage), so it sees the task's GPU.
        ctx = TaskContext.get()
        start = time.time()
        addresses = task_gpu_addresses()
        # The same call the UDF makes: same placement decision, and the cached scorer.
        device = scorer_for(config, addresses).placement.device
        frames = list(batches)
        time.sleep(sleep_s)  # hold the GPU a while, so the two task slots overlap
        end = time.time()
        for frame in frames:
            yield frame.assign(
                partition=ctx.partitionId() if ctx else -1,
                attempt=ctx.attemptNumber() if ctx else -1,
                gpus=json.dumps(addresses),
                device=device,
                pid=os.getpid(),
                start=start,
                end=end,
            )

    out_schema = (
        "id long, score float, partition int, attempt int, gpus string, device string, "
        "pid long, start double, end double"
    )
    return scored.mapInPandas(probe, out_schema)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gpu-placement-model-") as tmp:
        model_dir = build_tiny_cross_encoder(Path(tmp) / "model")
        config = ScorerConfig(str(model_dir), "{headline}", "{title}")
        pairs = make_pairs(args.partitions, args.rows_per_partition)
        spark = build_spark(args)
        try:
            rows = scored_with_probe(spark, pairs, config, args.partitions, args.sleep_s).collect()
            both_gpus = TaskResources(cpus=1, gpus=2)
            profiled = scored_with_probe(
                spark, pairs, config, args.partitions, 0.0, resources=both_gpus
            ).collect()
        finally:
            spark.stop()
        # Reference scores straight from the core, on CPU in this process, in input order.
        reference = CrossEncoderScorer.load(model_dir, Placement("cpu", "float32")).score(
            pairs["headline"].tolist(), pairs["title"].tolist()
        )

    tasks: dict[int, dict] = {}
    for r in rows:
        tasks.setdefault(
            r["partition"],
            {
                "partition": r["partition"],
                "attempt": r["attempt"],
                "gpus": json.loads(r["gpus"]),
                "device": r["device"],
                "pid": r["pid"],
                "start": r["start"],
                "end": r["end"],
                "rows": 0,
            },
        )["rows"] += 1
    result = {
        "input_ids": pairs["id"].tolist(),
        # (id, score) in output order; json writes NaN/Infinity, which json.loads reads back.
        "scored": [[r["id"], r["score"]] for r in rows],
        "reference": [float(x) for x in reference],
        "tasks": sorted(tasks.values(), key=lambda t: t["partition"]),
        "profiled_gpus": sorted({r["gpus"] for r in profiled}),
        "profiled_ids": sorted(r["id"] for r in profiled),
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

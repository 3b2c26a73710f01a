"""One local[2] SparkSession with Delta for the whole run, and tiny models built at test time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_cross_encoder

DAY = "2026-11-26"


@pytest.fixture(scope="session")
def spark():
    from jobs.settings import SparkSettings
    from jobs.spark_session import build_spark

    session = build_spark(
        SparkSettings(
            master="local[2]", shuffle_partitions=2, driver_memory="2g", arrow_batch_rows=512
        )
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder")


@pytest.fixture(scope="session")
def tiny_grade_model(tmp_path_factory) -> Path:
    return build_tiny_cross_encoder(
        tmp_path_factory.mktemp("models") / "tiny-grade-head", num_labels=5
    )


def cookbook_args(warehouse, tiny_model, *extra) -> list[str]:
    """Overrides for a tiny cookbook: 150 x 60 world, tiny judge base, 1-layer student."""
    return [
        f"warehouse={warehouse}",
        "world.members=150",
        "world.jobs=60",
        "world.partitions=2",
        "world.injection_share=0.1",
        f"teacher.fine_tune.base_model_dir={tiny_model}",
        "teacher.fine_tune.epochs=1",
        "student.n_layers=1",
        "student.distill.epochs=1",
        "eval.max_members=60",
        "sampling.per_stratum=2",
        "gold.sampling.per_stratum=2",
        *extra,
    ]


@pytest.fixture(scope="session")
def cookbook(tmp_path_factory, spark, tiny_model) -> Path:
    """A warehouse after one tiny `run-daily`: world, candidates, sample, gold, judge, labels,
    student, eval, promotion (under a gate nothing can fail) and scores."""
    from jobs.cli import main

    warehouse = tmp_path_factory.mktemp("cookbook")
    main(
        [
            "run-daily",
            "--date",
            DAY,
            *cookbook_args(warehouse, tiny_model),
            "gate.min_teacher_ndcg_share=0",
            "gate.max_stratum_regression=10",
            "gate.max_poor_match_rate=1",
        ]
    )
    return warehouse

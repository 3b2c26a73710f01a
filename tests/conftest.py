"""One local[2] SparkSession with Delta for the whole run, and tiny models built at test time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_cross_encoder


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

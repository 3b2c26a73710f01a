"""End to end: the daily run on a copy of the cookbook warehouse (a student in production, so
no retraining) with an explicit scoring model; idempotent reruns; one-line errors."""

import datetime as dt
import shutil

import pytest
from deltalake import DeltaTable

from jobs.cli import main
from tests.conftest import cookbook_args

# The cookbook's own date stays untouched by runs of another one.
COOKBOOK_DAY, DAY = "2026-11-26", "2026-11-28"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, cookbook):
    copy = tmp_path_factory.mktemp("daily") / "warehouse"
    shutil.copytree(cookbook, copy)
    return copy


def _args(warehouse, tiny_model, *extra):
    return [*cookbook_args(warehouse), f"scoring.model_dir={tiny_model}", "scoring.top_n=3", *extra]


def _day(spark, warehouse, table, day):
    return spark.read.format("delta").load(f"{warehouse}/{table}").where(f"run_date = '{day}'")


@pytest.fixture(scope="module")
def first_run(spark, warehouse, tiny_model):
    main(["run-daily", "--date", DAY, *_args(warehouse, tiny_model)])
    return {
        t: _day(spark, warehouse, t, DAY).toPandas() for t in ("candidates", "scores", "quarantine")
    }


def test_run_daily_writes_reconciled_tables(spark, warehouse, first_run):
    members = spark.read.format("delta").load(f"{warehouse}/members").count()
    jobs = spark.read.format("delta").load(f"{warehouse}/jobs").count()
    q = first_run["quarantine"]
    q_in = q[q.stage == "candidates"].source_table.value_counts()
    assert q_in.get("members", 0) > 0  # the 5 % bad rows arrived there
    cands, scores = first_run["candidates"], first_run["scores"]
    passed_members = members - q_in.get("members", 0)
    assert cands.member_id.nunique() <= passed_members
    assert jobs == 150 and members == 400
    # every candidate was scored (none quarantined at the score stage here)
    assert (q.stage == "score").sum() == 0
    assert scores.groupby("member_id").size().max() <= 3
    assert set(scores.member_id) == set(cands.member_id)
    assert scores["rank"].min() == 1 and scores.score.between(0, 1).all()
    assert scores.model_version.str.startswith("tiny-cross-encoder-").all()
    # ranks follow scores within each member
    for _, g in scores.groupby("member_id"):
        assert g.sort_values("rank").score.is_monotonic_decreasing


def test_outputs_are_readable_by_spark_sql_and_deltalake(spark, warehouse, first_run):
    sql = spark.sql(f"SELECT count(*) AS n FROM delta.`{warehouse}/scores` WHERE run_date='{DAY}'")
    assert sql.first().n == len(first_run["scores"])
    day = dt.date.fromisoformat(DAY)
    rows = DeltaTable(f"{warehouse}/scores").to_pandas(filters=[("run_date", "=", day)])
    assert len(rows) == len(first_run["scores"])
    assert DeltaTable(f"{warehouse}/quarantine").to_pandas().reason.notna().all()
    # Without Spark, as the README shows: polars, and DuckDB over the Delta table's Arrow dataset
    import duckdb
    import polars as pl

    scores = pl.read_delta(f"{warehouse}/scores").filter(pl.col("run_date") == day)
    assert scores.height == len(first_run["scores"])
    dataset = DeltaTable(f"{warehouse}/scores").to_pyarrow_dataset()  # noqa: F841 (DuckDB reads it)
    n = duckdb.sql(f"SELECT count(*) FROM dataset WHERE run_date = DATE '{DAY}'").fetchone()[0]
    assert n == len(first_run["scores"])


def test_rerun_replaces_exactly_that_date(spark, warehouse, tiny_model, first_run, capsys):
    other_before = _day(spark, warehouse, "scores", COOKBOOK_DAY).toPandas()
    assert len(other_before)
    main(["run-daily", "--date", DAY, *_args(warehouse, tiny_model)])
    for table in ("candidates", "scores", "quarantine"):
        again = _day(spark, warehouse, table, DAY).toPandas()
        assert len(again) == len(first_run[table]), table
        assert again.run_id.nunique() <= 1
        if len(again):
            assert set(again.run_id) != set(first_run[table].run_id)  # really rewritten
    scores = _day(spark, warehouse, "scores", DAY).toPandas()
    assert not scores.duplicated(["member_id", "job_id"]).any()
    key = ["member_id", "job_id", "score", "rank"]
    before = first_run["scores"][key].sort_values(key[:2]).reset_index(drop=True)
    assert before.equals(scores[key].sort_values(key[:2]).reset_index(drop=True))
    other_after = _day(spark, warehouse, "scores", COOKBOOK_DAY).toPandas()
    assert other_after.run_id.tolist() == other_before.run_id.tolist()
    # `show` sees the rerun through time travel: the same pairs as the day's previous write
    capsys.readouterr()
    main(["show", "--date", DAY, *_args(warehouse, tiny_model)])
    shown = capsys.readouterr().out
    assert f"scores: {len(scores):,} rows for {scores.member_id.nunique():,} members" in shown
    assert f"vs {COOKBOOK_DAY}: " in shown
    assert f"{len(scores):,} pairs kept, 0 new, 0 dropped" in shown.split("rerun:")[1]


def test_missing_inputs_and_model_are_one_line_errors(tmp_path, tiny_model, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["candidates", "--date", DAY, f"warehouse={tmp_path}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "input table 'members' not found" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["score", "--date", DAY, f"warehouse={tmp_path}", f"scoring.model_dir={tmp_path}/x"])
    assert "has no config.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run-daily", "scoring.top_nn=1"])
    assert "unknown config key 'scoring.top_nn'" in capsys.readouterr().err

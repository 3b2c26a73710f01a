"""The input contract: schema drift stops the run before any write; rows that pass validation but
cannot become candidates are counted with their reason."""

import os

from pyspark.sql import functions as F

from jobs.candidates import candidate_counts
from jobs.cli import main
from jobs.config.settings import load_settings
from jobs.pairs.blocking import candidate_pairs
from jobs.warehouse.validation import JOB_RULES, MEMBER_RULES, validate_rows
from schemas.tables import JOBS, MEMBERS
from tests.test_validation import GOOD as MEMBER

JOB = dict(
    job_id="j1",
    title="Data Engineer",
    company="Acme",
    description="Spark all day",
    skills="Spark, Airflow",
    seniority="senior",
    location="Berlin, DE",
    workplace_type="hybrid",
    visa_sponsorship=True,
)


def _frame(spark, table, base, *changes):
    rows = [{**base, **c} for c in changes]
    return spark.createDataFrame(rows, table.spark_schema(enforce_nullability=False))


def _warehouse(spark, tmp_path, jobs_df):
    root = tmp_path / "warehouse"
    _frame(spark, MEMBERS, MEMBER, {}).write.format("delta").save(str(root / "members"))
    jobs_df.write.format("delta").save(str(root / "jobs"))
    return root


def _run(root, capsys, *args):
    try:
        main(["candidates", "--date", "2026-11-26", f"warehouse={root}", *args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr()


def test_a_column_of_the_wrong_type_stops_the_run_before_any_write(spark, tmp_path, capsys):
    # visa_sponsorship as the string "yes": Spark would cast it to a boolean without a word
    jobs = _frame(spark, JOBS, JOB, {}).withColumn("visa_sponsorship", F.lit("yes"))
    root = _warehouse(spark, tmp_path, jobs)
    code, out = _run(root, capsys)
    assert code == 2
    errors = [line for line in out.err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "input table 'jobs': column 'visa_sponsorship' is string, expected boolean" in errors[0]
    tables = sorted(d for d in os.listdir(root) if d != "_locks")  # (the warehouse lock)
    assert tables == ["jobs", "members"]  # no quarantine, no candidates


def test_a_missing_column_is_named(spark, tmp_path, capsys):
    root = _warehouse(spark, tmp_path, _frame(spark, JOBS, JOB, {}).drop("workplace_type"))
    code, out = _run(root, capsys)
    assert code == 2
    assert "input table 'jobs': column 'workplace_type' is missing (expected string)" in out.err


def test_valid_members_without_candidates_are_counted_with_a_reason(spark):
    members = _frame(
        spark,
        MEMBERS,
        MEMBER,
        {},
        # a title no occupation family's words name, so the skills are the only keys:
        {"member_id": "m2", "skills": ",,,", "headline": "Chief Happiness Officer"},  # no key
        {"member_id": "m3", "skills": "Basket Weaving", "headline": "Chief Happiness Officer"},
    )
    jobs = _frame(
        spark, JOBS, JOB, {}, {"job_id": "j2", "skills": " , ", "title": "Chief Happiness Officer"}
    )
    passed_m = validate_rows(members, MEMBER_RULES, max_text_chars=1000).passed
    passed_j = validate_rows(jobs, JOB_RULES, max_text_chars=1000).passed
    assert passed_m.count() == 3 and passed_j.count() == 2  # all valid rows
    written = candidate_pairs(passed_m, passed_j, load_settings().candidates)
    assert {r.member_id for r in written.collect()} == {"m1"}
    counts = candidate_counts(passed_m, passed_j, written)
    assert counts == {
        "candidates": written.count(),
        "members_with_candidates": 1,
        "members_without_candidates": {"no_blocking_key": 1, "no_matching_job": 1},
        "jobs_no_blocking_key": 1,
    }


def test_a_run_reads_its_inputs_at_one_version_while_the_table_moves_on(spark, tmp_path):
    from jobs.warehouse.tables import Warehouse
    from jobs.warehouse.validation import Inputs

    root = _warehouse(spark, tmp_path, _frame(spark, JOBS, JOB, {}, {"job_id": "j2"}))
    settings = load_settings(None, [f"warehouse={root}"])
    inputs = Inputs.read(Warehouse.of(settings, spark), settings.validation).persist()
    try:
        assert inputs.versions == {"members": 0, "jobs": 0}
        assert inputs.describe() == "jobs version 0, members version 0"
        # another writer appends while the run is under way: the run keeps its snapshot
        _frame(spark, JOBS, JOB, {"job_id": "j3"}).write.format("delta").mode("append").save(
            str(root / "jobs")
        )
        members, jobs = inputs.valid
        assert sorted(r.job_id for r in jobs.collect()) == ["j1", "j2"]
        assert inputs.raw_jobs.count() == 2 and members.count() == 1
        again = Inputs.read(Warehouse.of(settings, spark), settings.validation)
        assert again.versions["jobs"] == 1 and again.valid[1].count() == 3
    finally:
        inputs.unpersist()

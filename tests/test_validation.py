"""Row rules: every bad row is quarantined with its reason, and the counts reconcile."""

from pyspark.sql import functions as F

from jobs.warehouse.validation import MEMBER_RULES, validate_rows
from schemas.tables import MEMBERS

GOOD = dict(
    member_id="m1",
    headline="Data Engineer",
    summary="hi",
    skills="Spark, SQL",
    seniority="senior",
    location="Berlin, DE",
    remote_preference="hybrid",
    work_authorization="DE",
)


def _rows(spark, *changes):
    rows = [{**GOOD, **c} for c in changes]
    return spark.createDataFrame(rows, MEMBERS.spark_schema(enforce_nullability=False))


def test_each_rule_has_its_reason(spark):
    df = _rows(
        spark,
        {},
        {"member_id": None},
        {"member_id": "m2", "headline": None},
        {"member_id": "m3", "skills": "  "},
        {"member_id": "m4", "seniority": "wizard"},
        {"member_id": "m5", "summary": "x" * 30000},
        {"member_id": "m6", "seniority": " Senior ", "headline": "\u200bData\u202e Engineer\ufeff"},
    )
    v = validate_rows(df, MEMBER_RULES, max_text_chars=20000)
    reasons = {r.entity_id: r.reason for r in v.quarantined.collect()}
    assert reasons == {
        None: "missing_id",
        "m2": "missing:headline",
        "m3": "missing:skills",
        "m4": "unknown_enum:seniority",
        "m5": "text_too_long:summary",
    }
    passed = {r.member_id: r for r in v.passed.collect()}
    assert set(passed) == {"m1", "m6"}
    assert passed["m6"].headline == "Data Engineer"  # invisible format characters removed
    assert passed["m6"].seniority == "senior"
    assert df.count() == v.passed.count() + v.quarantined.count()


def test_duplicate_ids_keep_one_row_deterministically(spark):
    df = _rows(spark, {"headline": "A"}, {"headline": "B"}, {"headline": "C", "seniority": "x"})
    v = validate_rows(df, MEMBER_RULES, max_text_chars=20000)
    kept = [r.headline for r in v.passed.collect()]
    reasons = sorted(r.reason for r in v.quarantined.collect())
    assert len(kept) == 1 and kept[0] in {"A", "B"}
    assert reasons == ["duplicate_id", "unknown_enum:seniority"]  # a broken copy never wins
    again = validate_rows(df.orderBy(F.desc("headline")), MEMBER_RULES, max_text_chars=20000)
    assert [r.headline for r in again.passed.collect()] == kept


def test_record_keeps_the_raw_row_cut_to_2000_chars(spark):
    df = _rows(spark, {"member_id": "m9", "summary": "y" * 30000})
    record = validate_rows(df, MEMBER_RULES, max_text_chars=20000).quarantined.first().record
    assert len(record) == 2000 and record.startswith('{"member_id":"m9"')


def test_count_rows_counts_each_frame_and_zero_for_an_empty_one(spark):
    from jobs.warehouse.tally import count_rows

    rows = _rows(spark, {}, {"member_id": "m2"}, {"member_id": None})
    checked = validate_rows(rows, MEMBER_RULES, max_text_chars=100)
    counts = count_rows(
        {"in": rows, "passed": checked.passed, "quarantined": checked.quarantined,
         "none": rows.where(F.lit(False)), "twice": rows.unionByName(rows)}
    )  # fmt: skip
    assert counts == {"in": 3, "passed": 2, "quarantined": 1, "none": 0, "twice": 6}

"""sample -> gold -> train-judge -> label -> calibrate on tiny data with tiny models."""

import pytest
from pyspark.sql import functions as F

from jobs.cli import main

DAY = "2026-11-26"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, spark, tiny_model):
    path = tmp_path_factory.mktemp("teacher-warehouse")
    main(["generate", *_args(path, tiny_model)])
    main(["candidates", "--date", DAY, *_args(path, tiny_model)])
    return path


def _args(warehouse, tiny_model, *extra):
    return [
        f"warehouse={warehouse}",
        "world.members=150",
        "world.jobs=60",
        "world.injection_share=0.2",
        "world.partitions=2",
        f"teacher.fine_tune.base_model_dir={tiny_model}",
        "teacher.fine_tune.epochs=1",
        "sampling.per_stratum=2",
        "sampling.hard_negatives_per_bucket=10",
        *extra,
    ]


def _table(spark, warehouse, name):
    return spark.read.format("delta").load(f"{warehouse}/{name}")


def test_sampling_is_deterministic_and_has_every_source(spark, warehouse, tiny_model):
    main(["sample", "--date", DAY, *_args(warehouse, tiny_model)])
    first = _table(spark, warehouse, "sampled_pairs").toPandas()
    main(["sample", "--date", DAY, *_args(warehouse, tiny_model)])
    again = _table(spark, warehouse, "sampled_pairs").toPandas()
    key = ["member_id", "job_id", "source", "stratum", "policy_bucket"]
    assert (
        first[key].sort_values(key).values.tolist() == again[key].sort_values(key).values.tolist()
    )
    assert set(first.source) == {"stratified", "hard_negative", "random"}
    assert not first.duplicated(["member_id", "job_id"]).any()
    hard = first[first.source == "hard_negative"]
    assert (hard.policy_bucket != "none").all()
    assert first.groupby(["source", "stratum"]).size().loc["stratified"].max() <= 2


def test_gold_then_judge_then_labels_once(spark, warehouse, tiny_model):
    main(["gold", "--date", DAY, *_args(warehouse, tiny_model)])
    gold = _table(spark, warehouse, "gold_labels").toPandas()
    assert set(gold.split) == {"selection", "heldout"}
    assert not set(gold[gold.split == "selection"].member_id) & set(
        gold[gold.split == "heldout"].member_id
    )  # split by member
    assert gold.policy_version.str.match(r"^\d+\.\d+\.\d+\+[0-9a-f]{12}$").all()
    assert gold.injected.any()

    main(["train-judge", *_args(warehouse, tiny_model)])
    main(["label", "--date", DAY, *_args(warehouse, tiny_model)])
    labels = _table(spark, warehouse, "teacher_labels").toPandas()
    sampled = _table(spark, warehouse, "sampled_pairs").count()
    quarantined = _table(spark, warehouse, "quarantine").where("stage = 'label'").count()
    assert len(labels) + quarantined == sampled
    probs = labels.grade_probs.apply(sum)
    assert ((probs - 1).abs() < 1e-4).all()
    assert (
        labels.grade == labels.grade_probs.apply(lambda p: max(range(5), key=p.__getitem__))
    ).all()
    assert labels.teacher_model_id.str.startswith("judge-minilm-l6-grade5-").all()
    assert labels.policy_version.nunique() == 1 and labels.prompt_hash.nunique() == 1

    main(["label", "--date", DAY, *_args(warehouse, tiny_model)])
    assert _table(spark, warehouse, "teacher_labels").count() == len(labels)  # nothing relabelled
    main(["label", "--date", DAY, *_args(warehouse, tiny_model), "teacher.max_length=64"])
    changed = _table(spark, warehouse, "teacher_labels")
    assert changed.select("prompt_hash").distinct().count() == 2  # a new prompt labels anew


def test_calibration_reports_kappa_per_slice(spark, warehouse, tiny_model, capsys):
    main(["calibrate", "--date", DAY, *_args(warehouse, tiny_model)])
    out = capsys.readouterr().out
    assert "| overall |" in out and "| injected |" in out and "| clean |" in out
    rows = _table(spark, warehouse, "judge_calibration").where(F.col("run_date") == DAY).toPandas()
    overall = rows.set_index("slice").loc["overall"]
    heldout = _table(spark, warehouse, "gold_labels").where("split = 'heldout'").count()
    assert overall.pairs == heldout
    assert any(s.startswith("occupation:") for s in rows.slice)


def test_the_llm_judge_labels_through_the_same_job(spark, warehouse, tiny_model, tmp_path):
    from tests.tiny_causal_lm import build_tiny_causal_lm

    llm = build_tiny_causal_lm(tmp_path / "tiny-llm-judge")
    args = [
        *_args(warehouse, tiny_model),
        "teacher.backend=llm",
        f"teacher.model_dir={llm}",
        "teacher.max_length=96",
    ]
    main(["label", "--date", DAY, *args])
    labels = (
        _table(spark, warehouse, "teacher_labels")
        .where(F.col("teacher_model_id").startswith("tiny-llm-judge-"))
        .toPandas()
    )
    sampled = _table(spark, warehouse, "sampled_pairs").count()
    quarantined = _table(spark, warehouse, "quarantine").where("stage = 'label'").count()
    assert len(labels) + quarantined == sampled
    assert labels.grade_probs.apply(lambda p: abs(sum(p) - 1) < 1e-4).all()
    main(["label", "--date", DAY, *args])
    assert _table(spark, warehouse, "teacher_labels").where(
        F.col("teacher_model_id").startswith("tiny-llm-judge-")
    ).count() == len(labels)

"""The teacher's steps on the tiny cookbook warehouse: sampling, gold, labels, calibration."""

from pyspark.sql import functions as F

from jobs.cli import main
from tests.conftest import DAY, cookbook_args


def _table(spark, warehouse, name):
    return spark.read.format("delta").load(f"{warehouse}/{name}")


def test_sampling_is_deterministic_and_has_every_source(spark, cookbook, tiny_model):
    first = _table(spark, cookbook, "sampled_pairs").toPandas()
    main(["sample", "--date", DAY, *cookbook_args(cookbook, tiny_model)])
    again = _table(spark, cookbook, "sampled_pairs").toPandas()
    key = ["member_id", "job_id", "source", "stratum", "policy_bucket"]
    assert sorted(map(tuple, first[key].values)) == sorted(map(tuple, again[key].values))
    assert set(again.run_id) != set(first.run_id)  # really rewritten, same pairs
    assert set(first.source) == {"stratified", "hard_negative", "random"}
    assert not first.duplicated(["member_id", "job_id"]).any()
    assert (first[first.source == "hard_negative"].policy_bucket != "none").all()
    assert first[first.source == "stratified"].groupby("stratum").size().max() <= 2


def test_gold_labels_are_split_by_member_and_versioned(spark, cookbook):
    gold = _table(spark, cookbook, "gold_labels").toPandas()
    assert set(gold.split) == {"selection", "heldout"}
    selection = set(gold[gold.split == "selection"].member_id)
    assert not selection & set(gold[gold.split == "heldout"].member_id)
    assert gold.policy_version.str.match(r"^\d+\.\d+\.\d+\+[0-9a-f]{12}$").all()
    assert gold.injected.any()
    assert gold.rater_grades.apply(len).eq(3).all()


def test_labels_are_soft_complete_and_made_once(spark, cookbook, tiny_model):
    labels = _table(spark, cookbook, "teacher_labels").toPandas()
    sampled = _table(spark, cookbook, "sampled_pairs").count()
    quarantined = _table(spark, cookbook, "quarantine").where("stage = 'label'").count()
    assert len(labels) + quarantined == sampled
    assert ((labels.grade_probs.apply(sum) - 1).abs() < 1e-4).all()
    argmax = labels.grade_probs.apply(lambda p: max(range(5), key=p.__getitem__))
    assert (labels.grade == argmax).all()
    assert labels.teacher_model_id.str.startswith("judge-minilm-l6-grade5-").all()
    assert labels.policy_version.nunique() == 1 and labels.prompt_hash.nunique() == 1

    main(["label", "--date", DAY, *cookbook_args(cookbook, tiny_model)])
    assert _table(spark, cookbook, "teacher_labels").count() == len(labels)  # nothing relabelled
    main(["label", "--date", DAY, *cookbook_args(cookbook, tiny_model), "teacher.max_length=64"])
    hashes = _table(spark, cookbook, "teacher_labels").select("prompt_hash").distinct().count()
    assert hashes == 2  # another prompt is another label set


def test_the_llm_judge_labels_through_the_same_job(spark, cookbook, tiny_model, tmp_path):
    from tests.tiny_causal_lm import build_tiny_causal_lm

    llm = build_tiny_causal_lm(tmp_path / "tiny-llm-judge")
    args = [
        *cookbook_args(cookbook, tiny_model),
        "teacher.backend=llm",
        f"teacher.model_dir={llm}",
        "teacher.max_length=96",
    ]
    main(["label", "--date", DAY, *args])
    by_llm = F.col("teacher_model_id").startswith("tiny-llm-judge-")
    labels = _table(spark, cookbook, "teacher_labels").where(by_llm).toPandas()
    sampled = _table(spark, cookbook, "sampled_pairs").count()
    quarantined = _table(spark, cookbook, "quarantine").where("stage = 'label'").count()
    assert len(labels) + quarantined == sampled
    assert labels.grade_probs.apply(lambda p: abs(sum(p) - 1) < 1e-4).all()
    main(["label", "--date", DAY, *args])
    assert _table(spark, cookbook, "teacher_labels").where(by_llm).count() == len(labels)


def test_calibration_reports_kappa_per_slice(spark, cookbook, tiny_model, capsys):
    main(["calibrate", "--date", DAY, *cookbook_args(cookbook, tiny_model)])
    out = capsys.readouterr().out
    assert "| overall |" in out and "| injected |" in out and "| clean |" in out
    rows = _table(spark, cookbook, "judge_calibration").where(F.col("run_date") == DAY).toPandas()
    heldout = _table(spark, cookbook, "gold_labels").where("split = 'heldout'").count()
    assert rows.set_index("slice").loc["overall"].pairs == heldout
    assert any(s.startswith("occupation:") for s in rows.slice)

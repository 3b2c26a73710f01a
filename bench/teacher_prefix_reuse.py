"""Teacher prefix reuse: the LLM judge's shared prefix, its per-batch prefix copy, the full prompt.

The judge prompt is ``prefix + suffix``: the prefix (role, the whole policy, the rubric) is the
same for every pair and runs to thousands of tokens; the suffix (one member, one job, the answer
cue) is a hundred or so. ``udfs.llm_judge.LLMJudge`` prefills the prefix once, then grades pairs
three ways, all reading the same five grade-token logits at the last real token:

* shared prefix (``prefix_mode="shared"``, the default): only the suffixes run; a custom attention
  function attends to the one prefix cache (the batch folded into the query rows) and merges the
  prefix and suffix parts by log-sum-exp; nothing of prefix length is copied per batch;
* prefix copy (``prefix_mode="copy"``, the earlier way): every batch starts from a batch-sized
  copy of the prefix keys/values in a ``DynamicCache``;
* full prompt (``use_prefix_cache=False``): prefix + suffix for every pair.

The model is a random Llama-architecture causal LM built here (default 4 layers, hidden 256,
4 heads on 2 KV heads; ``--layers 16 --hidden 2048 --heads 16 --kv-heads 8`` is the 1B-class
shape) with a word-level tokenizer trained on the policy and the pair texts, so nothing is
downloaded; its grades are meaningless, its compute is what is measured. ``--model-dir`` times a
real model instead: a Hugging Face folder or a GGUF file (dequantized once into
``--gguf-cache``), with its own tokenizer and ``--prompt-format`` (auto: its chat template).
``--device cuda`` runs it in bf16, ``cpu`` (default) in float32. The policy is
``conf/policy/job_match.md`` (or ``--policy-file``); the prefix must be at least 1,000 tokens.
Pairs are random (member, job) pairs from the synthetic world (``sim/world.py``, about 150 suffix
tokens each), every text field rendered; Spark-free, so it runs on a GPU box without Java or
pyspark.

Timing: one warm-up of each path on a few pairs, then one timed pass of each. The full-prompt
path is slow (it re-reads the whole policy per pair), so it is timed on the first
``--full-pairs`` pairs only; pairs/s and suffix tokens/s (real suffix tokens, no padding) are per
path, and outputs are compared on the pairs both paths graded. Progress goes to stderr, the
report (machine, tokens, markdown table, agreement) to stdout.

    .venv/bin/python bench/teacher_prefix_reuse.py --pairs 256 --full-pairs 32
    .venv/bin/python bench/teacher_prefix_reuse.py --model-dir <SmolLM2-135M-Instruct.Q4_1.gguf> \
        --pairs 24 --full-pairs 4
    python bench/teacher_prefix_reuse.py --device cuda --layers 16 --hidden 2048 --heads 16 \\
        --kv-heads 8 --pairs 1024 --full-pairs 64
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/tiny_causal_lm.py is not part of the installed package

from sim.render import render_jobs, render_members  # noqa: E402
from sim.world import CHUNK, job_latents, member_latents  # noqa: E402
from tests.tiny_causal_lm import build_tiny_causal_lm  # noqa: E402
from udfs.devices import Placement  # noqa: E402
from udfs.llm_judge import LLMJudge  # noqa: E402

DEFAULT_POLICY = ROOT / "conf" / "policy" / "job_match.md"
MIN_PREFIX_TOKENS = 1000
# Max |grade probability difference| allowed between paths: float32 paths agree to ~1e-5; bf16
# rounds hidden states and K/V at every layer, in a different order per path (as LLMJudge.verify).
TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}


def say(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy-file", type=Path, default=DEFAULT_POLICY)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda runs bf16")
    p.add_argument("--pairs", type=int, default=256, help="pairs graded with prefix reuse")
    p.add_argument("--full-pairs", type=int, default=32, help="of those, graded full-prompt too")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--token-budget", type=int, default=8192, help="padded tokens per batch")
    p.add_argument(
        "--max-batch-pairs",
        type=int,
        default=None,
        help="pairs per batch (default: none for shared, 32 for copy)",
    )
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--model-dir", type=Path, help="a real model: Hugging Face folder or GGUF file")
    p.add_argument("--gguf-cache", type=Path, help="where a GGUF file is dequantized (default tmp)")
    p.add_argument("--prompt-format", default="auto", choices=["auto", "plain", "chat"])
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def pair_texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` random (member text, job text) pairs from the synthetic world, all fields shown."""
    total = CHUNK  # one chunk of each: plenty of distinct members and jobs
    members = render_members(member_latents(seed, 0, total), seed, 0, 0.0)
    jobs = render_jobs(job_latents(seed, 0, total), seed, 0, 0.0)
    rng = np.random.default_rng(seed)
    m = members.iloc[rng.integers(len(members), size=n)]
    j = jobs.iloc[rng.integers(len(jobs), size=n)]
    member_text = [
        f"{r.headline}. {r.summary} Skills: {r.skills}. Seniority: {r.seniority}. "
        f"Location: {r.location}; prefers {r.remote_preference}; authorized in "
        f"{r.work_authorization}."
        for r in m.itertuples(index=False)
    ]
    job_text = [
        f"{r.title} at {r.company}. {r.description} Skills: {r.skills}. Seniority: "
        f"{r.seniority}. Location: {r.location}; {r.workplace_type}; visa sponsorship: "
        f"{'yes' if r.visa_sponsorship else 'no'}."
        for r in j.itertuples(index=False)
    ]
    return member_text, job_text


def machine(device: str) -> str:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "no GPU used"
    return (
        f"{cpu}, {os.cpu_count()} logical cores ({platform.machine()}, {platform.system()}), "
        f"{gpu}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; torch threads {torch.get_num_threads()}"
    )


def timed(fn, *args, **kwargs):
    import torch

    start = time.perf_counter()
    out = fn(*args, **kwargs)
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()  # grade() returns numpy (synchronised); the prefill does not
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # before torch: `--help` stays instant
    import torch

    if not args.policy_file.is_file():
        print(
            f"policy file {args.policy_file} not found: write conf/policy/job_match.md or pass "
            "--policy-file PATH (any text of at least 1,000 tokens)",
            file=sys.stderr,
        )
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda but CUDA is not available", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    placement = (
        Placement("cuda", "bfloat16") if args.device == "cuda" else Placement("cpu", "float32")
    )
    policy = args.policy_file.read_text(encoding="utf-8")
    members, jobs = pair_texts(args.pairs, args.seed)
    full_n = min(args.full_pairs, args.pairs)

    with tempfile.TemporaryDirectory(prefix="policyrank-judge-bench-") as tmp:
        if args.model_dir:
            from udfs.gguf import dequantized_folder, find_gguf

            gguf = find_gguf(args.model_dir)
            folder = dequantized_folder(gguf, args.gguf_cache or Path(tmp)) if gguf else None
            folder = folder or args.model_dir
        else:
            say(f"building a {args.layers}-layer, {args.hidden}-wide random causal LM")
            folder = build_tiny_causal_lm(
                Path(tmp) / "judge",
                corpus=[policy, *members, *jobs],
                hidden_size=args.hidden,
                num_layers=args.layers,
                num_heads=args.heads,
                num_kv_heads=args.kv_heads,
                intermediate_size=4 * args.hidden,
                seed=args.seed,
            )
        say("loading the judge (prefills the prefix once, verifies shared vs full)")
        judge, load_s = timed(
            LLMJudge.load,
            folder,
            policy,
            placement,
            token_budget=args.token_budget,
            max_batch_pairs=args.max_batch_pairs,
            prefix_mode="shared",
            prompt_format=args.prompt_format if args.model_dir else "plain",
        )
    prefix_tokens = judge.prefix_length
    if prefix_tokens < MIN_PREFIX_TOKENS:
        print(
            f"the prefix is {prefix_tokens} tokens; the benchmark needs >= {MIN_PREFIX_TOKENS}: "
            "pass a longer --policy-file",
            file=sys.stderr,
        )
        return 2
    _, prefill_s = timed(judge._prefill, judge.prompt.prefix_ids)
    suffix_tokens = np.array([len(s) for s in judge.prompt.suffix_ids(members, jobs)])

    say("warm-up")
    for mode in ("shared", "copy"):
        judge.grade(members[:4], jobs[:4], prefix_mode=mode)
    judge.grade(members[:2], jobs[:2], use_prefix_cache=False)
    runs = {}  # path -> (distribution, seconds, pairs)
    for mode in ("shared", "copy"):
        say(f"timing the {mode}-prefix path on {args.pairs} pairs")
        dist, seconds = timed(judge.grade, members, jobs, prefix_mode=mode)
        runs[mode] = (dist, seconds, args.pairs)
    say(f"timing the full-prompt path on {full_n} pairs")
    dist, seconds = timed(judge.grade, members[:full_n], jobs[:full_n], use_prefix_cache=False)
    runs["full"] = (dist, seconds, full_n)
    shared, copy, full = (runs[k][0].probs for k in ("shared", "copy", "full"))
    diffs = {
        "shared vs full prompt": float(np.abs(shared[:full_n] - full).max()),
        "copy vs full prompt": float(np.abs(copy[:full_n] - full).max()),
        "shared vs copy": float(np.abs(shared - copy).max()),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    command = " ".join(["bench/teacher_prefix_reuse.py", *(argv or sys.argv[1:])])
    print(f"Measured {dt.date.today().isoformat()} with `{command}`.")
    print(f"Machine: {machine(args.device)}; load average at the end {load:.2f}.")
    if args.model_dir:
        params = sum(p.numel() for p in judge.model.parameters())
        model = (
            f"{type(judge.model).__name__} from `{args.model_dir.name}`, {params / 1e6:,.0f} M "
            f"parameters, vocab {len(judge.prompt.tokenizer):,}, {judge.prompt.prompt_format} "
            "prompt"
        )
    else:
        model = (
            f"random Llama, {args.layers} layers, hidden {args.hidden}, {args.heads} heads "
            f"({args.kv_heads} KV heads), vocab {len(judge.prompt.tokenizer)} (word-level)"
        )
    print(
        f"Model: {model}, {placement.dtype_name} on {args.device}. Policy: "
        f"`{args.policy_file.name}`, {len(policy.split()):,} words."
    )
    cap = "none" if args.max_batch_pairs is None else args.max_batch_pairs
    print(
        f"Prefix: **{prefix_tokens:,} tokens**, prefilled once in {prefill_s:.2f} s "
        f"(load + prefill + verify {load_s:.1f} s). Suffix tokens per pair: min "
        f"{suffix_tokens.min()} / median {int(np.median(suffix_tokens))} / max "
        f"{suffix_tokens.max()}. Batches: token budget {args.token_budget}, max pairs {cap} "
        f"(copy: {args.max_batch_pairs or LLMJudge.COPY_MODE_MAX_PAIRS}); full prompts "
        f"{max(1, args.token_budget // (prefix_tokens + int(suffix_tokens.max())))} per batch."
    )
    print()
    print("| path | pairs | tokens run per pair (mean) | s | pairs/s | suffix tokens/s | vs full |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    full_rate = full_n / runs["full"][1]
    labels = {
        "full": "full prompt per pair",
        "copy": "prefix copy per batch (old)",
        "shared": "shared prefix (new)",
    }
    for key in ("full", "copy", "shared"):
        _, seconds, n = runs[key]
        run_per_pair = suffix_tokens[:n].mean() + (prefix_tokens if key == "full" else 0)
        rate = n / seconds
        print(
            f"| {labels[key]} | {n} | {run_per_pair:,.0f} | {seconds:.2f} | {rate:,.2f} | "
            f"{suffix_tokens[:n].sum() / seconds:,.0f} | **{rate / full_rate:.1f}x** |"
        )
    print()
    tolerance = TOLERANCE[placement.dtype_name]
    agreement = "; ".join(f"{name} {diff:.2e}" for name, diff in diffs.items())
    print(
        f"Max |grade probability difference| ({full_n} pairs vs full, {args.pairs} shared vs "
        f"copy): {agreement} (tolerance {tolerance:g})."
    )
    if not max(diffs.values()) <= tolerance:
        print(f"FAIL: the paths disagree beyond {tolerance}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

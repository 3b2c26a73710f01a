"""Teacher prefix reuse: the LLM judge with the policy prefix cached vs the full prompt per pair.

The judge prompt is ``prefix + suffix``: the prefix (role, the whole policy, the rubric) is the
same for every pair and runs to thousands of tokens; the suffix (one member, one job, the answer
cue) is a hundred or so. ``udfs.llm_judge.LLMJudge`` prefills the prefix once and starts every
batch from a copy of its key/value cache; ``use_prefix_cache=False`` runs prefix + suffix for every
pair. Both read the same five grade-token logits at the last real token.

The model is a random Llama-architecture causal LM built here (default 4 layers, hidden 256,
grouped-query attention) with a word-level tokenizer trained on the policy and the pair texts, so
nothing is downloaded; its grades are meaningless, its compute is what is measured. The policy is
``conf/policy/job_match.md`` (or ``--policy-file``); the prefix must be at least 1,000 tokens.
Pairs are random (member, job) pairs from the synthetic world (``sim/world.py``), every text
field rendered.

Timing: one warm-up of each path on a few pairs, then one timed pass of each. The full-prompt
path is slow (it re-reads the whole policy per pair), so it is timed on the first
``--full-pairs`` pairs only; pairs/s is per path, and outputs are compared on those pairs.
Progress goes to stderr, the report (machine, tokens, markdown table, agreement) to stdout.

    .venv/bin/python bench/teacher_prefix_reuse.py --pairs 256 --full-pairs 32
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

from sim.world import CHUNK, job_latents, member_latents, render_jobs, render_members  # noqa: E402
from tests.tiny_causal_lm import build_tiny_causal_lm  # noqa: E402
from udfs.devices import Placement  # noqa: E402
from udfs.llm_judge import LLMJudge  # noqa: E402

DEFAULT_POLICY = ROOT / "conf" / "policy" / "job_match.md"
MIN_PREFIX_TOKENS = 1000
TOLERANCE = 1e-4  # fp32: cached and full prompts agree to ~1e-6 in probability


def say(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy-file", type=Path, default=DEFAULT_POLICY)
    p.add_argument("--pairs", type=int, default=256, help="pairs graded with the prefix cache")
    p.add_argument("--full-pairs", type=int, default=32, help="of those, graded full-prompt too")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--token-budget", type=int, default=8192, help="padded tokens per batch")
    p.add_argument("--max-batch-pairs", type=int, default=32, help="pairs per cached batch")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
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


def machine() -> str:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical cores ({platform.machine()}, {platform.system()}), "
        f"no GPU used; Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; torch threads {torch.get_num_threads()}"
    )


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    if not args.policy_file.is_file():
        print(
            f"policy file {args.policy_file} not found: write conf/policy/job_match.md or pass "
            "--policy-file PATH (any text of at least 1,000 tokens)",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    policy = args.policy_file.read_text(encoding="utf-8")
    members, jobs = pair_texts(args.pairs, args.seed)
    full_n = min(args.full_pairs, args.pairs)

    with tempfile.TemporaryDirectory(prefix="policyrank-judge-bench-") as tmp:
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
        say("loading the judge (prefills the prefix once, verifies cached vs full)")
        judge, load_s = timed(
            LLMJudge.load,
            folder,
            policy,
            Placement("cpu", "float32"),
            token_budget=args.token_budget,
            max_batch_pairs=args.max_batch_pairs,
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
    judge.grade(members[:4], jobs[:4])
    judge.grade(members[:2], jobs[:2], use_prefix_cache=False)
    say(f"timing the prefix-cached path on {args.pairs} pairs")
    cached, cached_s = timed(judge.grade, members, jobs)
    say(f"timing the full-prompt path on {full_n} pairs")
    full, full_s = timed(judge.grade, members[:full_n], jobs[:full_n], use_prefix_cache=False)
    diff = float(np.abs(cached.probs[:full_n] - full.probs).max())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    cached_rate, full_rate = args.pairs / cached_s, full_n / full_s
    real_cached = int(suffix_tokens.sum())
    real_full = int((suffix_tokens[:full_n] + prefix_tokens).sum())
    command = " ".join(["bench/teacher_prefix_reuse.py", *(argv or sys.argv[1:])])
    print(f"Measured {dt.date.today().isoformat()} with `{command}`.")
    print(f"Machine: {machine()}; load average at the end {load:.2f}.")
    print(
        f"Model: random Llama, {args.layers} layers, hidden {args.hidden}, {args.heads} heads "
        f"({args.kv_heads} KV heads), vocab {len(judge.prompt.tokenizer)} (word-level), fp32. "
        f"Policy: `{args.policy_file.name}`, {len(policy.split()):,} words."
    )
    print(
        f"Prefix: **{prefix_tokens:,} tokens**, prefilled once in {prefill_s:.2f} s "
        f"(load + prefill + verify {load_s:.1f} s). Suffix tokens per pair: min "
        f"{suffix_tokens.min()} / median {int(np.median(suffix_tokens))} / max "
        f"{suffix_tokens.max()}. Batches: token budget {args.token_budget}, at most "
        f"{args.max_batch_pairs} pairs (cached); full prompts "
        f"{max(1, args.token_budget // (prefix_tokens + int(suffix_tokens.max())))} per batch."
    )
    print()
    print("| path | pairs | tokens run per pair (mean) | s | pairs/s | vs full prompt |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| full prompt per pair | {full_n} | {real_full / full_n:,.0f} | {full_s:.2f} | "
        f"{full_rate:.2f} | 1.00x |"
    )
    print(
        f"| prefix reuse (cached) | {args.pairs} | {real_cached / args.pairs:,.0f} | "
        f"{cached_s:.2f} | {cached_rate:.2f} | **{cached_rate / full_rate:.1f}x** |"
    )
    print()
    print(f"Max |grade probability difference|, cached vs full, over {full_n} pairs: {diff:.2e}.")
    if not diff <= TOLERANCE:
        print(f"FAIL: the paths disagree beyond {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

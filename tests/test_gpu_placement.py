"""GPU placement on a real (standalone) Spark cluster with fake GPUs and no CUDA.

Local mode does not schedule GPUs, so this starts a standalone master and worker on 127.0.0.1
whose discovery script reports GPUs "0" and "1", then runs tests/gpu_placement_app.py against
them in a subprocess (its own JVM, apart from the session's local SparkSession). Two tasks run
at once, each must be handed its own GPU address; with no CUDA the core scores on CPU and says
so in the executor's stderr once per Python worker.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest

HERE = Path(__file__).resolve().parent
APP = HERE / "gpu_placement_app.py"
SPARK_HOME = Path(pyspark.__file__).resolve().parent
SPARK_CLASS = SPARK_HOME / "bin" / "spark-class"
RESULT_PREFIX = "GPU_PLACEMENT_RESULT "
NOTE = re.compile(r"\[policyrank pid=(\d+)\] Spark assigned GPU (\S+) but CUDA is not available")
START_TIMEOUT_S = 60
APP_TIMEOUT_S = 150
C1 = "-XX:TieredStopAtLevel=1"  # short-lived test JVMs warm up faster with C1 alone

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(
        shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
        reason="needs Java for a standalone Spark master and worker",
    ),
]


@dataclass
class Cluster:
    master_url: str
    worker_dir: Path
    discovery_script: Path
    logs: Path


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Bundled Spark, an empty conf dir (no stray spark-env.sh / defaults), loopback only.
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_CONF_DIR=str(tmp / "conf"),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(tmp / "logs"),
        SPARK_PID_DIR=str(tmp),
        SPARK_DAEMON_MEMORY="512m",
        SPARK_DAEMON_JAVA_OPTS=C1,
    )
    env.pop("PYSPARK_GATEWAY_PORT", None)  # never attach the app to the pytest session's JVM
    (tmp / "conf").mkdir(exist_ok=True)
    return env


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Own process group, so teardown also reaches the JVM's children (executors, Python workers).
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen, timeout_s: float) -> re.Match:
    deadline, text = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if match := re.search(pattern, text):
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: process exited ({proc.returncode}):\n{text[-3000:]}")
        time.sleep(0.25)
    raise TimeoutError(f"{log.name}: no {pattern!r} after {timeout_s}s:\n{text[-3000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("standalone")
    env = _env(tmp)
    (tmp / "logs").mkdir()
    script = tmp / "gpus.sh"
    script.write_text('#!/usr/bin/env bash\necho \'{"name":"gpu","addresses":["0","1"]}\'\n')
    script.chmod(0o755)
    procs: list[subprocess.Popen] = []
    try:
        # Port 0 everywhere: the OS picks free ports, so parallel Spark runs cannot collide;
        # the master's real port is read back from its log.
        master_env = {**env, "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
        master_log = tmp / "logs" / "master.log"
        master = _start(
            [str(SPARK_CLASS), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", "0", "--webui-port", "0"],
            master_env,
            master_log,
        )  # fmt: skip
        procs.append(master)
        url = _wait_for(
            master_log, r"Starting Spark master at (spark://127\.0\.0\.1:\d+)", master,
            START_TIMEOUT_S,
        ).group(1)  # fmt: skip
        _wait_for(master_log, r"I have been elected leader", master, START_TIMEOUT_S)

        worker_dir = tmp / "work"
        worker_env = {
            **env,
            "SPARK_WORKER_OPTS": "-Dspark.worker.resource.gpu.amount=2 "
            f"-Dspark.worker.resource.gpu.discoveryScript={script}",
        }
        worker_log = tmp / "logs" / "worker.log"
        worker = _start(
            [str(SPARK_CLASS), "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
             "--port", "0", "--webui-port", "0", "--cores", "2", "--memory", "2g",
             "--work-dir", str(worker_dir), url],
            worker_env,
            worker_log,
        )  # fmt: skip
        procs.append(worker)
        _wait_for(worker_log, r"Successfully registered with master", worker, START_TIMEOUT_S)
        yield Cluster(url, worker_dir, script, tmp / "logs")
    finally:
        for proc in reversed(procs):  # worker first: it kills its executors on the way out
            _stop(proc)


@pytest.fixture(scope="module")
def run(cluster: Cluster) -> dict:
    env = _env(cluster.logs.parent)
    cmd = [
        sys.executable, str(APP), "--master", cluster.master_url,
        "--discovery-script", str(cluster.discovery_script),
        "--partitions", "6", "--rows-per-partition", "5", "--sleep-s", "1.0",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=APP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop(proc)
        out, err = proc.communicate()
        pytest.fail(f"app timed out after {APP_TIMEOUT_S}s:\n{err[-4000:]}")
    lines = [line for line in out.splitlines() if line.startswith(RESULT_PREFIX)]
    assert proc.returncode == 0 and len(lines) == 1, f"app failed:\n{out[-2000:]}\n{err[-4000:]}"
    result = json.loads(lines[0][len(RESULT_PREFIX) :])
    result["app_output"] = out.replace(lines[0], "") + err
    # The executors are done once the app has stopped its SparkContext; read what they logged.
    result["executor_stderr"] = "".join(
        p.read_text(errors="replace") for p in sorted(cluster.worker_dir.glob("app-*/*/stderr"))
    )
    return result


def test_every_task_got_exactly_one_gpu_and_both_were_used(run: dict) -> None:
    tasks = run["tasks"]
    assert [t["partition"] for t in tasks] == list(range(6))
    for t in tasks:
        assert len(t["gpus"]) == 1 and t["gpus"][0] in {"0", "1"}, t
    assert {t["gpus"][0] for t in tasks} == {"0", "1"}


def test_tasks_that_overlapped_had_different_gpus(run: dict) -> None:
    tasks = run["tasks"]
    overlapping = [
        (a, b)
        for i, a in enumerate(tasks)
        for b in tasks[i + 1 :]
        if a["start"] < b["end"] and b["start"] < a["end"]
    ]
    assert overlapping, "no two tasks ran at the same time; concurrency was not exercised"
    for a, b in overlapping:
        assert a["gpus"] != b["gpus"], (a, b)


def _notes(run: dict) -> list[tuple[str, str]]:
    """(pid, GPU address) of every CPU-fallback note the Python workers wrote to stderr."""
    return NOTE.findall(run["executor_stderr"])


def test_no_cuda_means_cpu_and_every_worker_says_so(run: dict) -> None:
    assert {t["device"] for t in run["tasks"]} == {"cpu"}
    notes = _notes(run)
    assert notes, "no CPU fallback note in the executor stderr logs"
    assert len(notes) == len(set(notes)), notes  # never repeated per task
    # Every probe worker called scorer_for with a GPU and no CUDA, so each must have said so.
    assert {str(t["pid"]) for t in run["tasks"]} <= {pid for pid, _ in notes}


def test_the_note_is_logged_at_most_once_per_python_worker(run: dict) -> None:
    pids = [pid for pid, _ in _notes(run)]
    assert len(pids) == len(set(pids)), _notes(run)


def test_scores_are_finite_complete_and_in_input_order(run: dict) -> None:
    scored, reference = run["scored"], run["reference"]
    assert sorted(i for i, _ in scored) == run["input_ids"]
    by_id = dict(scored)
    assert all(math.isfinite(by_id[i]) for i in run["input_ids"]), scored
    # A random tiny model's scores all sit near 0.5 (spread ~4e-5), so the tolerance must be
    # tight for a mix-up of rows to show; check first that shifting rows by one would show.
    tol = 1e-6
    shifted = sum(
        abs(a - b) > tol for a, b in zip(reference, reference[1:] + reference[:1], strict=True)
    )
    assert shifted > len(reference) // 2, "reference scores too alike to check the order"
    # The UDF's score for a row is the core's score for that row's own pair.
    got = [by_id[i] for i in run["input_ids"]]
    worst = max(abs(a - b) for a, b in zip(got, reference, strict=True))
    assert worst <= tol, list(zip(run["input_ids"], got, reference, strict=True))


def test_a_stage_profile_gives_the_scoring_tasks_what_it_asks_for(run: dict) -> None:
    # Stage-level scheduling: the scoring stage asked for 2 GPUs per task (the cluster default is
    # 1), so every one of its tasks held both addresses, and every row was still scored.
    assert [sorted(json.loads(g)) for g in run["profiled_gpus"]] == [["0", "1"]]
    assert run["profiled_ids"] == run["input_ids"]
    assert all(len(t["gpus"]) == 1 for t in run["tasks"])  # the unprofiled run: one each


def test_no_member_text_in_any_spark_output(run: dict) -> None:
    # The app's pairs carry a sentinel in every member text: the driver's and the executors'
    # logs (JVM and Python workers) must never show it.
    assert "ZQX-sentinel-7f3a" not in run["app_output"] + run["executor_stderr"]


def readme_submit_line() -> list[str]:
    """The README's `spark-submit` line as argv, ``$PWD`` standing for the checkout."""
    text = (HERE.parent / "README.md").read_text()
    block = re.search(r"```bash\n(?:source [^\n]*\n)?(spark-submit .*?)\n```", text, re.S)
    assert block, "no spark-submit block in README.md"
    return shlex.split(block.group(1).replace("\\\n", " ").replace("$PWD", str(HERE.parent)))


def test_spark_submit_runs_the_score_job_on_the_standalone_master(
    cluster: Cluster, cookbook: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """The README's submit line as printed, with --master (and test resources): `jobs/cli.py
    score` as a cluster application whose executors run the interpreter the line names."""
    from deltalake import DeltaTable

    from jobs.runtime.spark_session import delta_package
    from tests.conftest import DAY

    warehouse = tmp_path / "warehouse"
    shutil.copytree(cookbook, warehouse, ignore=shutil.ignore_patterns("_catalog", "_locks"))
    env = _env(cluster.logs.parent)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    before = set(cluster.worker_dir.glob("app-*"))
    line = readme_submit_line()
    assert line[line.index("--packages") + 1] == delta_package(), "README's --packages is stale"
    assert "--date" in line and line[line.index("--date") + 1] == DAY
    cmd = [
        line[0], "--master", cluster.master_url,
        # test resources and speed only: C1 alone warms these short-lived JVMs up faster
        "--conf", "spark.executor.memory=1g", "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", f"spark.driver.extraJavaOptions={C1}",
        "--conf", f"spark.executor.extraJavaOptions={C1}",
        *line[1:], f"warehouse={warehouse}", f"scoring.model_dir={tiny_model}", "scoring.top_n=3",
    ]  # fmt: skip
    submit = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=APP_TIMEOUT_S, cwd=HERE.parent
    )
    assert submit.returncode == 0, submit.stderr[-4000:]
    # spark-submit merges the Python driver's stderr into its own stdout.
    printed = submit.stdout + submit.stderr
    assert "score: " in printed and "[ok]" in printed
    apps = set(cluster.worker_dir.glob("app-*")) - before
    assert len(apps) == 1, "the job ran as an application of the standalone master"
    scores = DeltaTable(str(warehouse / "scores")).to_pyarrow_dataset().to_table().to_pandas()
    day = scores[scores.run_date.astype(str) == DAY]
    assert len(day) > 0 and day.model_version.str.startswith("tiny-cross-encoder-").all()
    assert day.groupby("member_id").size().max() == 3

"""The `policyrank` command line: one click command per job, each taking --conf and key=value
overrides. It is also the spark-submit entry point: ``spark-submit … jobs/cli.py score --date D``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
import tempfile
from pathlib import Path

import click
from delta import exceptions as delta_errors

from jobs.config.settings import Settings, load_settings
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log, new_run_id

# Delta's commit conflicts (its Python classes share no base class but PySparkException).
_DELTA_CONFLICTS = (
    delta_errors.ConcurrentAppendException,
    delta_errors.ConcurrentDeleteDeleteException,
    delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentTransactionException,
    delta_errors.ConcurrentWriteException,
    delta_errors.MetadataChangedException,
    delta_errors.ProtocolChangedException,
)

CONF = click.option(
    "--conf",
    "conf_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config (default: conf/local.yaml).",
)
OVERRIDES = click.argument("overrides", nargs=-1)
DATE = click.option(
    "--date",
    "run_date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Run date, YYYY-MM-DD (default: today, UTC).",
)


def _date(value: dt.datetime | None) -> dt.date:
    return value.date() if value else dt.datetime.now(dt.UTC).date()


_CONSOLE: dict = {"verbose": False, "log_file": None}  # `policyrank --verbose`; the JVM's log


def spark_log_file(settings: Settings) -> Path:
    """Where a command's JVM output goes: ``<warehouse>/_logs`` for a local warehouse, else the
    system's temporary folder; one file per process."""
    from jobs.warehouse.tables import local_path

    root = local_path(settings.warehouse)
    folder = root / "_logs" if root is not None else Path(tempfile.gettempdir()) / "policyrank-logs"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return folder / f"spark-{stamp}-{os.getpid()}.log"


def _session(settings: Settings):
    from pyspark import SparkContext

    from jobs.runtime.spark_session import build_spark

    log_file = None if _CONSOLE["verbose"] else spark_log_file(settings)
    if SparkContext._active_spark_context is None:  # else the JVM runs already, logging elsewhere
        _CONSOLE["log_file"] = log_file
    return build_spark(settings.spark, log_file=log_file)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--verbose", is_flag=True, help="Show Spark's and Ivy's own output (default: a log file)."
)
def cli(verbose: bool) -> None:
    """policyrank: policy-guided distillation and precomputed recommendations on Spark + Delta."""
    _CONSOLE["verbose"] = verbose


# Steps that run one function, (spark, settings[, date], run_id=...), and print only their log:
# (command, module, function, takes --date, help).
STEPS = (
    ("generate", "sim.generate", "run", False,
     "Simulator: write the synthetic world: members, jobs (with bad rows), hidden truth."),
    ("advance", "sim.churn", "advance", True,
     "Simulator: advance the world by one day of churn: edited, new and deleted members, new "
     "and closed jobs (a date already applied is skipped)."),
    ("candidates", "jobs.candidates", "run", True,
     "Validate inputs and write the date's top-K candidate pairs per member."),
    ("sample", "jobs.sample", "run", True,
     "Pick the date's pairs for the teacher: stratified, hard negatives, random."),
    ("gold", "sim.gold", "run", True,
     "Simulator: gold labels from simulated raters (and the hidden true grades)."),
    ("train-judge", "jobs.judge", "train_judge", False,
     "Fine-tune the cross_encoder judge (or, teacher.backend=llm, a causal LM) on training gold."),
    ("label", "jobs.judge", "label", True,
     "Teacher soft labels for the date's sampled pairs not labelled yet."),
    ("train", "jobs.student", "train", False,
     "Distil the teacher's soft labels into a student (student.architecture)."),
    ("promote", "jobs.evaluate", "promote", True,
     "Make the date's evaluated student the production model if it passes the gate."),
    ("score", "jobs.score", "run", True,
     "Score the date's candidates with the student and write the top-N per member."),
)  # fmt: skip


def _writing(settings: Settings, run_id: str):
    """A writing run holds the warehouse lock shared, so `maintain` never vacuums under it."""
    from jobs.warehouse.day_lock import hold_warehouse

    return hold_warehouse(settings, run_id=run_id)


def _step_command(name: str, module: str, function: str, dated: bool, doc: str) -> None:
    def command(conf_path, overrides, run_date=None) -> None:
        settings = load_settings(conf_path, overrides)
        run = getattr(importlib.import_module(module), function)
        day = _date(run_date) if dated else None
        run_id = new_run_id(day)
        with _writing(settings, run_id):
            if dated:
                run(_session(settings), settings, day, run_id=run_id)
            else:
                run(_session(settings), settings, run_id=run_id)

    command.__doc__ = doc
    for option in (OVERRIDES, *([DATE] if dated else []), CONF):
        command = option(command)
    cli.command(name)(command)


for _step in STEPS:
    _step_command(*_step)


@cli.command()
@CONF
@DATE
@click.option(
    "--pairs",
    type=click.IntRange(min=5),
    default=None,
    help="Grade this many held-out gold pairs, grade-balanced (default: all); for a slow judge.",
)
@OVERRIDES
def calibrate(conf_path, run_date, pairs, overrides) -> None:
    """The teacher against the held-out gold labels: weighted kappa and confusion per slice."""
    from jobs import judge

    settings, day = load_settings(conf_path, overrides), _date(run_date)
    run_id = new_run_id(day)
    with _writing(settings, run_id):
        result = judge.calibrate(_session(settings), settings, day, run_id=run_id, pairs=pairs)
    click.echo(judge.format_calibration(result["table"]))


@cli.command()
@CONF
@DATE
@click.option("--model", "model_dir", default=None, help="Student folder (default: the newest).")
@OVERRIDES
def evaluate(conf_path, run_date, model_dir, overrides) -> None:
    """Student vs teacher, production, prefilter and random on held-out members."""
    from jobs import evaluate as job

    settings, day = load_settings(conf_path, overrides), _date(run_date)
    run_id = new_run_id(day)
    with _writing(settings, run_id):
        result = job.evaluate(
            _session(settings), settings, day, run_id=run_id, student_dir=model_dir
        )
    click.echo(job.format_eval(result["metrics"], result["comparisons"]))
    click.echo(f"report: {result['report']}")


@cli.command()
@CONF
@click.option(
    "--date",
    "run_date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Date, YYYY-MM-DD (default: the latest scored date).",
)
@OVERRIDES
def show(conf_path, run_date, overrides) -> None:
    """A day at a glance: counts, quarantine reasons, scores, what changed since before."""
    from jobs import show as job

    settings = load_settings(conf_path, overrides)
    day = run_date.date() if run_date else None
    click.echo(job.format_show(job.show(_session(settings), settings, day)))


@cli.command()
@CONF
@click.option(
    "--allow-short-retention",
    is_flag=True,
    help="Vacuum with maintenance.keep_days under Delta's 7-day default (it waits for running "
    "writes on a local warehouse; elsewhere, only when nothing writes).",
)
@OVERRIDES
def maintain(conf_path, allow_short_retention, overrides) -> None:
    """Compact every Delta table and vacuum files older than maintenance.keep_days, holding the
    warehouse lock alone (it waits for the runs that write)."""
    from jobs import maintain as job

    settings = load_settings(conf_path, overrides)
    flag = "--allow-short-retention"
    job.checked_keep_days(settings.maintenance, allow_short_retention, flag)  # before Spark starts
    job.run(
        _session(settings),
        settings,
        run_id=new_run_id(),
        allow_short_retention=allow_short_retention,
    )


@cli.command()
@CONF
@OVERRIDES
def catalog(conf_path, overrides) -> None:
    """Register the warehouse's tables by name (catalog.database) for spark-sql."""
    from jobs import catalog as job

    settings = load_settings(conf_path, overrides)
    if not settings.catalog.database:
        raise PolicyrankError("catalog.database is null: set it to register the tables by name")
    result = job.ensure_registered(_session(settings), settings)
    if "error" in result:
        raise PolicyrankError(f"tables not registered: {result['error']}")
    click.echo(job.format_catalog(result))


@cli.command("run-daily")
@CONF
@DATE
@click.option(
    "--train/--no-train",
    "retrain",
    default=False,
    help="Distil, evaluate and try to promote a new student (always done when no "
    "production model exists).",
)
@OVERRIDES
def run_daily(conf_path, run_date, retrain, overrides) -> None:
    """The daily cookbook: candidates -> sample -> label -> (train -> evaluate -> promote) ->
    score -> report. With world.generate_if_missing, the simulator first makes what is missing
    (world, gold labels, simulated judge)."""
    from jobs import run_daily as job
    from jobs.warehouse.day_lock import hold_day

    settings, day = load_settings(conf_path, overrides), _date(run_date)
    run_id = new_run_id(day)
    with hold_day(settings, day, run_id=run_id), _writing(settings, run_id):
        spark = _session(settings)
        if settings.world.generate_if_missing:
            from sim import bootstrap

            bootstrap.prepare(spark, settings, day, run_id=run_id)
        summary = job.run(spark, settings, day, run_id=run_id, retrain=retrain)
    click.echo(job.format_summary(settings, day, summary))


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="policyrank", standalone_mode=False)
    except PolicyrankError as err:
        log(f"error: {err}")
        sys.exit(2)
    except _DELTA_CONFLICTS as err:
        # Reached only by writes that race one of the same date without a date lock (a URI
        # warehouse): Delta committed nothing of this write. The message names the table only.
        first = str(err).splitlines()[0][:300]
        log(
            f"error: another run wrote the same Delta table at the same time: {first}; nothing of "
            "this write was committed: rerun the date once the other run has ended"
        )
        sys.exit(3)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        sys.exit(1)
    except Exception as err:
        from jobs.runtime.task_failures import executor_failure

        cause = executor_failure(err)
        if cause is None:
            raise
        log(f"error: {cause} (the whole trace: {_write_trace(err)})")
        sys.exit(2)


def _write_trace(err: BaseException) -> Path:
    """Append ``err``'s traceback to this run's Spark log file (or a file beside it)."""
    import traceback

    path = _CONSOLE.get("log_file") or Path(tempfile.gettempdir()) / "policyrank-logs" / (
        f"error-{os.getpid()}.log"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        traceback.print_exception(err, file=out)
    return path


if __name__ == "__main__":  # spark-submit jobs/cli.py <command> ...
    main()

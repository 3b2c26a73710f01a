"""One line for a Spark task that failed on an executor: the cause and what to check.

Spark reports a failed task as a driver-side exception whose text holds the executor's stack
trace several frames down (a Py4J error, or one of pyspark's captured exceptions). The CLI turns
the ones recognised here into one ``error:`` line and exit status 2, and writes the whole trace
to the run's log file.
"""

from __future__ import annotations

import re

_TASK_FAILED = re.compile(r"(Job aborted due to stage failure|Task \S+ in stage \S+ failed)")
_NO_PROGRAM = re.compile(r'Cannot run program "([^"]+)"')
_PY_ERROR = re.compile(r"^\s*([A-Za-z_.]*(?:Error|Exception)): (.+)$", re.M)
_OOM = ("OutOfMemoryError", "Container killed", "exit code 137", "killed by the OS")


def executor_failure(err: BaseException) -> str | None:
    """The one-line cause of a failed Spark task in ``err``, or None when ``err`` is not one.

    >>> executor_failure(RuntimeError("Job aborted due to stage failure: ... "
    ...     'java.io.IOException: Cannot run program "/opt/py/bin/python": error=2, No such file'))
    ... # doctest: +ELLIPSIS
    'a Spark task could not start Python on an executor: "/opt/py/bin/python" does not exist...'
    >>> executor_failure(ValueError("bad value")) is None
    True
    """
    text = str(err)
    if not _TASK_FAILED.search(text):
        return None
    if match := _NO_PROGRAM.search(text):
        return (
            f'a Spark task could not start Python on an executor: "{match.group(1)}" does not '
            "exist there; set spark.pyspark.python (or PYSPARK_PYTHON) to an absolute path of an "
            "interpreter with policyrank installed on every executor"
        )
    if any(mark in text for mark in _OOM):
        return (
            "a Spark task ran out of memory on an executor; raise spark.executor.memory (or "
            "the memory overhead) or lower inference.token_budget / arrow_batch_rows"
        )
    python = _PY_ERROR.findall(text.split("Traceback (most recent call last)")[-1])
    if python:
        kind, message = python[-1]
        hint = _hint(message)
        return f"a Spark task failed on an executor: {kind}: {message.strip()[:300]}{hint}"
    first = next((ln for ln in text.splitlines() if "Caused by:" in ln), text.splitlines()[0])
    return f"a Spark task failed on an executor: {first.strip()[:300]}"


def _hint(message: str) -> str:
    if "config.json" in message or "No such file" in message or "Permission denied" in message:
        return "; check that the model folder is readable from every executor"
    return ""

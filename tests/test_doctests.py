"""Docstring examples that are meant to run, run."""

import doctest
import importlib

import pytest

MODULES = [
    "jobs.incremental",
    "jobs.models.cards",
    "jobs.quality.report",
    "jobs.runtime.task_failures",
    "jobs.warehouse.tables",
    "udfs.overlap",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0

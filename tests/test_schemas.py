from pathlib import Path

from schemas.__main__ import tables_markdown
from schemas.tables import TABLES


def test_docs_match_the_schemas():
    docs = Path(__file__).resolve().parents[1] / "docs" / "tables.md"
    assert docs.read_text() == tables_markdown(), "run: python -m schemas > docs/tables.md"


def test_outputs_are_partitioned_by_run_date():
    for name in ("candidates", "scores", "quarantine"):
        assert TABLES[name].partition_by == ("run_date",)
        assert "run_id" in TABLES[name].names

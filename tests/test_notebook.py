"""The analysts' notebook runs top to bottom on the tiny cookbook warehouse."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_scores.ipynb"


def test_the_notebook_runs_top_to_bottom(cookbook, monkeypatch):
    monkeypatch.setenv("POLICYRANK_WAREHOUSE", str(cookbook))  # the kernel inherits it
    nb = nbformat.read(NOTEBOOK, as_version=4)
    where = {"metadata": {"path": str(NOTEBOOK.parent)}}
    NotebookClient(nb, timeout=300, resources=where).execute()  # raises on a failing cell
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "rows," in text and "members," in text  # the day's scores, read with deltalake
    assert "mean_score" in text and "userMetadata" in text  # DuckDB and polars

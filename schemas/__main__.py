"""`python -m schemas` prints every table's documentation as Markdown (docs/tables.md)."""

from schemas.tables import TABLES


def tables_markdown() -> str:
    header = (
        "# Tables\n\nGenerated from `schemas/tables.py` by `python -m schemas > docs/tables.md`; "
        "do not edit by hand.\n"
    )
    return "\n".join([header, *(t.markdown() for t in TABLES.values())])


if __name__ == "__main__":
    print(tables_markdown(), end="")

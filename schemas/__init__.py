"""The one definition of every policyrank table. Jobs import their schemas from here."""

from schemas.tables import (
    CANDIDATES,
    JOBS,
    MEMBERS,
    QUARANTINE,
    SCORES,
    TABLES,
    TRUTH,
    Column,
    Table,
)

__all__ = [
    "CANDIDATES",
    "JOBS",
    "MEMBERS",
    "QUARANTINE",
    "SCORES",
    "TABLES",
    "TRUTH",
    "Column",
    "Table",
]

"""Render member and job fields into the two texts a cross-encoder reads."""

from __future__ import annotations

import string

import pandas as pd


class _Blank(dict):
    """Missing or null fields render as empty strings rather than 'None'."""

    def __missing__(self, key: str) -> str:
        return ""


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def render(template: str, frame: pd.DataFrame) -> list[str]:
    """``template.format_map(row)`` for each row; nulls become ''. Text is inserted verbatim:
    braces inside untrusted values are data, never format fields."""
    fields = [f for f in template_fields(template) if f in frame.columns]
    columns = [frame[f].tolist() for f in fields]
    out = []
    for values in zip(*columns, strict=True) if columns else [()] * len(frame):
        row = _Blank(
            {f: "" if v is None or v != v else v for f, v in zip(fields, values, strict=True)}
        )
        out.append(" ".join(template.format_map(row).split()))
    return out

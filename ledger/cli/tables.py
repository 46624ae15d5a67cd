"""Readable tables for the terminal (rich); nested fields are flattened into columns."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            flat[key] = len(value)
        else:
            flat[key] = value
    return flat


def print_rows(rows: list[dict[str, Any]], title: str, console: Console | None = None) -> None:
    console = console or Console(width=200)
    if not rows:
        console.print(f"{title}: no rows")
        return
    flat = [flatten(r) for r in rows]
    table = Table(title=title, show_lines=False)
    for column in flat[0]:
        numeric = all(_is_number(r.get(column)) for r in flat)
        table.add_column(column, justify="right" if numeric else "left")
    for row in flat:
        # Text, not markup: a value such as "[erased]" (SPEC §13) is shown as written; a
        # styled cell comes as Text already.
        table.add_row(*(v if isinstance(v, Text) else Text("" if v is None else str(v))
                        for v in row.values()))  # fmt: skip
    console.print(table)


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True

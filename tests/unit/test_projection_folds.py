"""The three ways a projection folds events — one at a time (keys/apply), a prepared batch
(`ledger project`) and a Folder (rebuild) — give the same rows, whatever the batch size."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ledger.app.views import PROJECTIONS, published_events
from projections.base import Projection, Rows, folder, prepare
from tests.unit.test_wire import rich_ledger

EVENTS: list[dict[str, Any]] = list(published_events(rich_ledger()))


def one_at_a_time(projection: Projection, events: list[dict[str, Any]]) -> Rows:
    rows: Rows = {}
    for event in events:
        for key in projection.keys(event):
            rows[key] = projection.apply(key, rows.get(key), event)
    return rows


def canonical(rows: Rows) -> str:
    return json.dumps(rows, sort_keys=True)


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
@pytest.mark.parametrize("batch", [1, 7, 500, len(EVENTS)])
def test_prepared_batches_give_the_rows_of_one_at_a_time(name: str, batch: int) -> None:
    projection = PROJECTIONS[name]
    expected = one_at_a_time(projection, copy.deepcopy(EVENTS))
    rows: Rows = {}
    events = copy.deepcopy(EVENTS)
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        prepared = prepare(projection, chunk)
        assert prepared.keys == {k for e in chunk for k in projection.keys(e)}
        # Like `ledger project`: only the rows named by keys are loaded before apply.
        loaded = {k: rows[k] for k in prepared.keys if k in rows}
        prepared.apply(loaded)
        assert set(loaded) == prepared.keys
        rows.update(loaded)
    assert canonical(rows) == canonical(expected)


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
def test_a_folder_gives_the_rows_of_one_at_a_time(name: str) -> None:
    projection = PROJECTIONS[name]
    expected = one_at_a_time(projection, copy.deepcopy(EVENTS))
    rows: Rows = {}
    fold_in = folder(projection, rows)
    for event in copy.deepcopy(EVENTS):
        fold_in(event)
    fold_in.finish()
    assert canonical(rows) == canonical(expected)
    assert rows  # the demo's events give every projection rows

"""The Python runtime of a long ledger command (`ledger consume|publish|project|ingest`,
`ledger bill partner-center`): its cyclic garbage collector.

Each message or line makes and drops a dozen containers (a validated message, its event,
the state's dicts), so the collector's young generation, collected every 700 allocations by
default, walked them all the time: ~10 % of a billing line's CPU, ~5 % of an ingest
message's (benchmarks/profile_billing.py, profile_ingest.py). None of them is cyclic
garbage; the collector still runs, less often.
"""

from __future__ import annotations

import gc

# Young-generation collections every 10,000 allocations instead of 700.
GC_THRESHOLD = (10_000, 10, 10)


def tune_gc() -> None:
    """What exists now (modules, settings, a price book, a file's text) is frozen out of every
    later collection, and collections run less often (GC_THRESHOLD). Once, at the start of
    the command's work (forked workers inherit it)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)

"""Load the collections policy file (TOML, `LEDGER_POLICY_FILE`).

The rules themselves live in `ledger.domain.policy`; only the file I/O is here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ledger.domain.policy import CollectionsPolicy, PolicyError, parse_policies

EXAMPLE_POLICY_TOML = """\
# Collections policies. A customer names one with `collections_policy` (default "standard").
# Steps are in strictly increasing days_past_due; each fires once per overdue invoice, only
# when the customer's overdue total is MORE THAN min_amount (a decimal string, default "0").
# reinstatement: "paid_in_full" or "below_min_amount" (overdue <= the suspend step's
# min_amount). A policy named "standard" here replaces the built-in one.

[policies.strict]
reinstatement = "below_min_amount"

[[policies.strict.steps]]
days_past_due = 5
action = "reminder"
min_amount = "0.00"

[[policies.strict.steps]]
days_past_due = 10
action = "final_notice"
min_amount = "0.00"

[[policies.strict.steps]]
days_past_due = 15
action = "suspend"
min_amount = "50.00"

[policies.lenient]
reinstatement = "paid_in_full"

[[policies.lenient.steps]]
days_past_due = 14
action = "reminder"

[[policies.lenient.steps]]
days_past_due = 45
action = "final_notice"

[[policies.lenient.steps]]
days_past_due = 60
action = "suspend"
min_amount = "100.00"
"""


def load_policies(path: Path | None) -> dict[str, CollectionsPolicy]:
    """The built-in policies plus those of the TOML file at `path` (None: built-ins only).

    Raises `PolicyError` naming the file when it is missing, unreadable, not valid TOML,
    or holds an invalid policy.
    """
    if path is None:
        return parse_policies({})
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file {str(path)!r}: not found", field="policy_file") from exc
    except OSError as exc:
        raise PolicyError(
            f"policy file {str(path)!r}: cannot be read ({exc.strerror or exc})",
            field="policy_file",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(
            f"policy file {str(path)!r}: not valid TOML ({exc})", field="policy_file"
        ) from exc
    try:
        return parse_policies(data)
    except PolicyError as exc:
        raise PolicyError(f"policy file {str(path)!r}: {exc.message}", field=exc.field) from exc

"""The partner's own details (SPEC §14): `LEDGER_PARTNER_PROFILE`, a TOML file.

    name, address, country (ISO 3166 alpha-2), tax_id, email, phone, support_hours,
    support_contact, [bank] account_name, bank_name, iban, bic

Unknown keys, missing keys and wrong values are a `ConfigError` naming the key
(`LEDGER_PARTNER_PROFILE: bank.iban: ...`): documents are never sent with a guessed sender.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ledger.config import ConfigError, Settings

Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class BankDetails(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    account_name: Text
    bank_name: Text
    iban: str = Field(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
    bic: str = Field(pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")


class PartnerProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: Text
    address: Text
    country: str = Field(pattern=r"^[A-Z]{2}$")
    tax_id: Text
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    phone: Text
    support_hours: Text
    support_contact: Text
    bank: BankDetails


# Shown when no profile is configured (demo, tests): marked so nobody mistakes it for real.
SAMPLE = PartnerProfile(
    name="Sample Partner (set LEDGER_PARTNER_PROFILE)",
    address="1 Example Street, Dublin, Ireland",
    country="IE",
    tax_id="IE0000000X",
    email="billing@partner.example",
    phone="+353 1 555 0100",
    support_hours="Monday to Friday, 08:00-18:00 UTC",
    support_contact="support@partner.example",
    bank=BankDetails(
        account_name="Sample Partner",
        bank_name="Example Bank",
        iban="IE29AIBK93115212345678",
        bic="AIBKIE2D",
    ),
)


def load_profile(path: Path) -> PartnerProfile:
    """The profile in the TOML file at `path`. Raises ConfigError naming the variable, the
    key (dotted, e.g. `bank.iban`) and what is wrong."""
    where = f"LEDGER_PARTNER_PROFILE ({path})"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where}: cannot be read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML ({error})") from None
    try:
        return PartnerProfile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ConfigError(f"{where}: {key}: {reason}{more}") from None


def partner_profile(settings: Settings, *, required: bool = False) -> PartnerProfile:
    """The configured profile; without `LEDGER_PARTNER_PROFILE` the marked SAMPLE, unless
    `required` (sending mail to customers), when its absence is a ConfigError."""
    if settings.partner_profile is None:
        if required:
            raise ConfigError(
                "LEDGER_PARTNER_PROFILE: not set; customers are never sent documents without "
                "the partner's details"
            )
        return SAMPLE
    return load_profile(settings.partner_profile)

"""LEDGER_PARTNER_PROFILE (SPEC §14): read through the settings, unknown keys refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.config import ConfigError, Settings
from ledger.documents.profile import SAMPLE, partner_profile

GOOD = """
name = "Contoso Cloud Partner Ltd"
address = "1 Harbour Street, Dublin D02 XY45, Ireland"
country = "IE"
tax_id = "IE1234567X"
email = "billing@contoso.test"
phone = "+353 1 555 0100"
support_hours = "Monday to Friday, 08:00-18:00 UTC"
support_contact = "support@contoso.test"
[bank]
account_name = "Contoso Cloud Partner Ltd"
bank_name = "Bank of Ireland"
iban = "IE29AIBK93115212345678"
bic = "AIBKIE2D"
"""


def settings_with(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    path = tmp_path / "partner.toml"
    path.write_text(text)
    monkeypatch.setenv("LEDGER_PARTNER_PROFILE", str(path))
    return Settings()


def test_the_spec_example_loads_through_the_settings(tmp_path, monkeypatch):
    profile = partner_profile(settings_with(tmp_path, GOOD, monkeypatch))
    assert profile.name == "Contoso Cloud Partner Ltd"
    assert profile.bank.iban == "IE29AIBK93115212345678"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (GOOD + 'colour = "blue"\n', "colour: unknown key"),
        (GOOD.replace('bic = "AIBKIE2D"', 'bic = "AIBKIE2D"\nswift = "x"'), "bank.swift: unknown"),
        (GOOD.replace('tax_id = "IE1234567X"\n', ""), "tax_id: Field required"),
        (GOOD.replace('"IE29AIBK93115212345678"', '"not an iban"'), "bank.iban:"),
        (GOOD.replace('country = "IE"', "country = 7"), "country:"),
        ("name = ", "not valid TOML"),
    ],
)
def test_mistakes_fail_closed_naming_the_key(tmp_path, monkeypatch, text, named):
    with pytest.raises(ConfigError, match="LEDGER_PARTNER_PROFILE") as caught:
        partner_profile(settings_with(tmp_path, text, monkeypatch))
    assert named in str(caught.value)


def test_missing_file_and_required_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("LEDGER_PARTNER_PROFILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        partner_profile(Settings())
    monkeypatch.delenv("LEDGER_PARTNER_PROFILE")
    assert partner_profile(Settings()) is SAMPLE
    with pytest.raises(ConfigError, match="LEDGER_PARTNER_PROFILE: not set"):
        partner_profile(Settings(), required=True)

"""LEDGER_AUDIT_KEY through the settings object: unset is "no key"; anything malformed fails
closed with an error naming the variable, never read as "no key"."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ledger.config import ConfigError, Settings


def test_unset_key_is_none_and_a_hex_key_is_its_bytes() -> None:
    assert Settings(audit_key=None).audit_key_bytes() is None
    assert Settings(audit_key=SecretStr("ab" * 32)).audit_key_bytes() == bytes([0xAB]) * 32


@pytest.mark.parametrize("bad", ["", "xyz", "ab" * 31, "ab" * 16 + "g"])
def test_a_malformed_key_is_a_config_error_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="LEDGER_AUDIT_KEY"):
        Settings(audit_key=SecretStr(bad)).audit_key_bytes()


def test_the_key_never_shows_in_the_settings_repr() -> None:
    assert "ab" * 32 not in repr(Settings(audit_key=SecretStr("ab" * 32)))

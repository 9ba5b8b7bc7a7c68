"""Settings from the environment: values that need more than a type conversion."""

from __future__ import annotations

import pytest
from model_api.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("k-123", "k-123"), ("k-123\n", "k-123"), ("  k 123\r\n", "k 123"), ("", None)],
    ids=["plain", "trailing-newline", "surrounding-space", "empty-is-unset"],
)
def test_api_key_loses_surrounding_whitespace(raw: str, expected: str | None) -> None:
    assert Settings.from_env({"MODEL_API_API_KEY": raw}).api_key == expected


def test_blank_api_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError, match="MODEL_API_API_KEY is blank") as error:
        Settings.from_env({"MODEL_API_API_KEY": " \n"})

    assert "\\n" not in str(error.value) and "' " not in str(error.value)

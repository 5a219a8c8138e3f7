"""How an API error reads as text (what the CLI prints)."""

from __future__ import annotations

from jobwatch.errors import ValidationError


def test_a_detail_the_message_already_says_is_not_repeated() -> None:
    said = ValidationError(
        "invalid token request: no tenant named 'x'",
        details=[{"field": "tenant", "message": "no tenant named 'x'"}],
    )
    assert str(said).count("no tenant named 'x'") == 1
    assert str(said) == "invalid token request: no tenant named 'x' (400 validation_error)"
    new = ValidationError(
        "1 invalid field in request body", details=[{"field": "progress", "message": "too big"}]
    )
    assert str(new) == "1 invalid field in request body (400 validation_error): progress: too big"

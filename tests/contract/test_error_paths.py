"""The ``details`` of a refused request name JSON paths, through union-typed fields too.

pydantic puts the name of each member of a union it tried into an error's
``loc`` (``scalars.ScalarPoint.step``, ``scalars.list[ScalarPoint]``) and
reports every member's errors. ``parse_body``, ``parse_query`` and
``parse_client_message`` turn that into the member that matched best, named by
JSON path alone (``scalars.step``), or into one message saying what is allowed
where no member matched at all.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from jobwatch.contract.requests import ProgressUpdate, parse_body, parse_client_message
from jobwatch.errors import ValidationError

_Strict = ConfigDict(strict=True, extra="ignore", populate_by_name=True)

MEMBER_NAMES = re.compile(r"ScalarPoint|list\[|Inner|str\b|int\b|subscribe:|unsubscribe:")
"""What a union member's name in pydantic's ``loc`` looks like; never part of a field."""


def refused(model: type[BaseModel], body: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_body(model, json.dumps(body).encode())
    assert caught.value.code == "validation_error"
    for detail in caught.value.details:
        assert not MEMBER_NAMES.search(detail["field"]), detail
    return caught.value


def details(error: ValidationError) -> list[tuple[str, str]]:
    return [(d["field"], d["message"]) for d in error.details]


def progress(**fields: Any) -> dict[str, Any]:
    return {"workerId": "w", "progress": 1, **fields}


@pytest.mark.parametrize(
    ("scalars", "field", "words"),
    [
        ({"step": -1, "values": {"m1": 1}}, "scalars.step", "greater than or equal to 0"),
        (
            [{"step": 1, "values": {"m1": 1}}, {"step": -1, "values": {"m1": 1}}],
            "scalars[1].step",
            "greater than or equal to 0",
        ),
        ({"step": 1}, "scalars.values", "is required"),
        ([{"step": 1, "values": {"m1": "x"}}], "scalars[0].values.m1", "valid number"),
        (
            {"step": 1, "values": {"m1": 1, "bad name!": 2}},
            "scalars.values.bad name!",
            "not allowed",
        ),
        (5, "scalars", "object or"),
        ("loss", "scalars", "object or"),
        ([5], "scalars[0]", "object"),
    ],
)
def test_scalars_errors_name_the_json_path_once(scalars: Any, field: str, words: str) -> None:
    error = refused(ProgressUpdate, progress(scalars=scalars))
    [(named, message)] = details(error)
    assert named == field
    assert words in message, message
    assert error.message == "1 invalid field in request body"


def test_a_union_error_beside_other_errors_counts_once() -> None:
    error = refused(ProgressUpdate, {"progress": 101, "scalars": {"step": -1, "values": {"a": 1}}})
    assert sorted(f for f, _ in details(error)) == ["progress", "scalars.step", "workerId"]
    assert error.message == "3 invalid fields in request body"


class Inner(BaseModel):
    model_config = _Strict

    n: Annotated[int, Field(ge=0)]
    tags: dict[str, int] | None = None


class Nested(BaseModel):
    model_config = _Strict

    one: Inner | list[Inner]
    either: int | str | None = None
    deep: list[Inner | list[Inner]] | None = None
    kind: (
        Annotated[
            Annotated[Inner, Field(title="i")] | Annotated[list[int], Field(title="l")],
            Field(union_mode="left_to_right"),
        ]
        | None
    ) = None
    mode: Literal["a", "b"] = "a"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"one": {"n": -1}}, "one.n"),
        ({"one": [{"n": 1}, {"n": -1}]}, "one[1].n"),
        ({"one": {"n": 1, "tags": {"t": "x"}}}, "one.tags.t"),
        ({"one": {"n": 1}, "either": 1.5}, "either"),
        ({"one": {"n": 1}, "deep": [{"n": 1}, [{"n": 2}, {"n": -3}]]}, "deep[1][1].n"),
        ({"one": {"n": 1}, "deep": [{"n": -1}]}, "deep[0].n"),
        ({"one": {"n": 1}, "kind": {"n": -1}}, "kind.n"),
        ({"one": {"n": 1}, "kind": [1, "x"]}, "kind[1]"),
        ({"one": {}}, "one.n"),
    ],
)
def test_any_union_field_is_named_by_its_json_path(body: dict[str, Any], field: str) -> None:
    assert [f for f, _ in details(refused(Nested, body))] == [field]


def test_a_value_no_member_takes_gets_one_message_listing_them() -> None:
    [(field, message)] = details(refused(Nested, {"one": "x"}))
    assert field == "one"
    assert message == "input should be an object or a valid array"
    [(field, message)] = details(refused(Nested, {"one": {"n": 1}, "either": []}))
    assert field == "either"
    assert "valid integer" in message and "valid string" in message


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "subscribe:job", "subscriptionId": "j", "since": -1}, "since"),
        ({"type": "subscribe:job", "subscriptionId": "j", "logs": {"rank": -1}}, "logs.rank"),
        ({"type": "subscribe:job", "subscriptionId": "j", "progress": "some"}, "progress"),
        ({"type": "subscribe:job"}, "subscriptionId"),
        ({"type": "unsubscribe:job", "subscriptionId": ""}, "subscriptionId"),
        ({"type": "subscribe:jobs", "status": "done"}, "status"),
    ],
)
def test_websocket_message_fields_are_json_paths(message: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_client_message(json.dumps(message))
    assert [d["field"] for d in caught.value.details] == [field]
    assert caught.value.message == "1 invalid message field"

"""pydantic's validation errors as the contract's ``details``: one per bad field,
named by its JSON path (``metrics.gpuUtilization``, ``logLines[2].level``).

pydantic's ``loc`` is almost a JSON path, but not through a union: it names the
member it tried (``scalars.ScalarPoint.step``, ``scalars.list[ScalarPoint]``,
a tagged union's tag) and it reports every member's errors, so one mistake
reads as several. :func:`error_details` walks each ``loc`` along the model's
core schema, which says where a union stands, drops the members' names, and
keeps the errors of the member that matched best: the one that failed
deepest inside the value rather than on its type. Where every member refused
the value itself (an object was sent where a number or a list goes), the
members' messages become one (``input should be an object or a valid array``).
A dict key's error names the key (pydantic appends ``[key]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import CoreSchema

__all__ = ["error_details", "humanize"]

_WRAPPERS = (
    "nullable",
    "default",
    "model",
    "function-after",
    "function-before",
    "function-wrap",
)
_SEQUENCES = ("list", "set", "frozenset", "tuple", "generator")
_KEY = "[key]"


@dataclass(frozen=True)
class _Walked:
    """One error's JSON path and the union members its ``loc`` went through."""

    path: tuple[int | str, ...]
    members: tuple[tuple[tuple[int | str, ...], str], ...]
    """Each union on the way: (its JSON path, the member's name in ``loc``)."""
    error: Mapping[str, Any]


def humanize(error: Mapping[str, Any]) -> str:
    """pydantic's message for one error as a detail's ``message``: lower case,
    without ``Value error, ``; ``is required`` for a missing field."""
    if error["type"] == "missing":
        return "is required"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message[:1].lower() + message[1:]


def json_path(path: Sequence[int | str]) -> str:
    """``("logLines", 2, "level")`` as ``logLines[2].level``; ``body`` when empty."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "body"


def error_details(errors: Sequence[Mapping[str, Any]], schema: CoreSchema) -> list[dict[str, str]]:
    """pydantic's ``errors()`` of a value validated against ``schema`` (a model's
    ``__pydantic_core_schema__`` or a ``TypeAdapter``'s ``core_schema``) as
    ``[{"field": JSON path, "message"}]``, in pydantic's order, each union
    reduced to its best member (see the module's docstring)."""
    refs = _refs(schema)
    walked = [_walk(schema, tuple(e["loc"]), e, refs) for e in errors]
    for depth in range(max((len(w.members) for w in walked), default=0)):
        walked = _pick_members(walked, depth)
    details: list[dict[str, str]] = []
    for item in walked:
        detail = {"field": json_path(item.path), "message": humanize(item.error)}
        if detail not in details:
            details.append(detail)
    return details


def _pick_members(walked: list[_Walked], depth: int) -> list[_Walked]:
    """Keep, at each union reached at nesting ``depth``, the errors of its best member."""
    by_union: dict[tuple[Any, ...], dict[str, list[_Walked]]] = {}
    for item in walked:
        if len(item.members) > depth:
            union = (item.members[:depth], item.members[depth][0])
            by_union.setdefault(union, {}).setdefault(item.members[depth][1], []).append(item)
    dropped: set[int] = set()
    merged: dict[int, _Walked] = {}
    for union, members in by_union.items():
        if len(members) < 2:
            continue
        at = union[1]
        failed_whole = {name: all(i.path == at for i in items) for name, items in members.items()}
        if all(failed_whole.values()):
            firsts = [items[0] for items in members.values()]
            merged[id(firsts[0])] = _Walked(
                at, firsts[0].members[:depth], {"type": "union", "msg": _either(firsts)}
            )
            dropped.update(id(i) for items in members.values() for i in items)
            continue
        best = min(
            (name for name in members if not failed_whole[name]),
            key=lambda name: len(members[name]),
        )
        dropped.update(id(i) for name, items in members.items() if name != best for i in items)
    return [merged.get(id(w), w) for w in walked if id(w) not in dropped or id(w) in merged]


def _either(items: list[_Walked]) -> str:
    """One message from the members' refusals of a whole value."""
    messages = [humanize(i.error) for i in items]
    prefix = "input should be "
    if all(m.startswith(prefix) for m in messages):
        return prefix + " or ".join(dict.fromkeys(m[len(prefix) :] for m in messages))
    return "; or ".join(dict.fromkeys(messages))


def _refs(schema: Any) -> dict[str, Any]:
    """Every schema of ``schema`` that carries a ``ref``, by it."""
    found: dict[str, Any] = {}
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if isinstance(node.get("ref"), str) and "type" in node:
                found.setdefault(node["ref"], node)
            pending.extend(v for k, v in node.items() if k not in ("metadata", "serialization"))
        elif isinstance(node, (list, tuple)):
            pending.extend(node)
    return found


def _unwrap(node: Any, refs: dict[str, Any]) -> Any:
    """``node`` past the schemas that add no step to a ``loc``."""
    while isinstance(node, dict):
        kind = node.get("type")
        if kind in _WRAPPERS or kind == "definitions":
            node = node.get("schema")
        elif kind == "definition-ref":
            node = refs.get(node["schema_ref"])
        elif kind == "json-or-python":
            node = node["json_schema"]
        elif kind == "lax-or-strict":
            node = node["strict_schema"]
        else:
            return node
    return None


def _walk(
    schema: Any, loc: tuple[int | str, ...], error: Mapping[str, Any], refs: dict[str, Any]
) -> _Walked:
    """The JSON path of ``loc`` and the union members on it, following ``schema``
    (past a part the schema does not explain, the rest of ``loc`` is taken as is)."""
    path: list[int | str] = []
    members: list[tuple[tuple[int | str, ...], str]] = []
    node = schema
    i = 0
    while i < len(loc):
        part = loc[i]
        node = _unwrap(node, refs)
        kind = node.get("type") if isinstance(node, dict) else None
        if kind == "tagged-union":
            members.append((tuple(path), str(part)))
            node = node["choices"].get(part)
        elif kind == "union":
            members.append((tuple(path), str(part)))
            node = _member(node, str(part), loc[i + 1 :], refs)
        elif kind == "dict" and i + 1 < len(loc) and loc[i + 1] == _KEY:
            path.append(part)  # the key itself is wrong
            node = None
            i += 1
        else:
            path.append(part)
            node = _step(node, kind, part)
        i += 1
    return _Walked(tuple(path), tuple(members), error)


def _step(node: Any, kind: str | None, part: int | str) -> Any:
    """The schema one ``loc`` part below ``node`` (``None``: not known)."""
    if kind == "model-fields":
        for name, field in node["fields"].items():
            if field.get("validation_alias", name) == part or name == part:
                return field["schema"]
        return None
    if kind in _SEQUENCES:
        return node.get("items_schema")
    if kind == "dict":
        return node.get("values_schema")
    return None


def _member(union: dict[str, Any], label: str, rest: tuple[int | str, ...], refs: Any) -> Any:
    """The member of a smart union that pydantic named ``label`` in a ``loc``."""
    choices = [c if isinstance(c, tuple) else (c, None) for c in union["choices"]]
    for choice, given in choices:
        if given == label or _label(choice, refs) == label:
            return choice
    return None


def _label(schema: Any, refs: dict[str, Any]) -> str | None:
    """The name pydantic-core gives a union member in a ``loc``, for the kinds that
    hold fields (models and lists of them); ``None`` for others (their errors
    end at the union, so their place is known without it)."""
    node = schema
    while isinstance(node, dict) and node.get("type") == "definition-ref":
        node = refs.get(node["schema_ref"])
    kind = node.get("type") if isinstance(node, dict) else None
    if kind == "model":
        return str(node["cls"].__name__)
    if kind in _SEQUENCES:
        inner = _label(node.get("items_schema"), refs)
        return None if inner is None else f"{kind}[{inner}]"
    return None

"""Check a raw document against the workflow contract (JSON Schema, Draft 2020-12).

The fast path asks jsonschema-rs ``is_valid`` (~6 ms for 10,000 jobs); only a
document that fails is walked by ``jsonschema`` for errors, which are turned
into diagnostics that say what is wrong in the user's terms, with a
"did you mean" where a near name exists.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ..resources import schema_path
from .diagnostics import Diagnostic, Path, diag
from .suggest import did_you_mean
from .text import clip, echo

MAX_SCHEMA_DIAGNOSTICS = 50
_JSON_TYPES = {"object": "an object", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "true or false",
               "null": "null"}


@cache
def contract() -> dict[str, Any]:
    with open(schema_path(), encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


@cache
def _fast_validator() -> Any:
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - no wheel for this platform
        return None
    return jsonschema_rs.validator_for(contract())


@cache
def _detailed_validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(contract())


def validate_document(document: Any) -> list[Diagnostic]:
    fast = _fast_validator()
    if fast is not None and fast.is_valid(document):
        return []
    errors = sorted(_detailed_validator().iter_errors(document),
                    key=lambda e: [str(p) for p in e.absolute_path])
    wrong_type = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    wrong_kind = {tuple(e.absolute_path)[:-1] for e in errors if e.absolute_path
                  and e.absolute_path[-1] == "kind"}
    out: list[Diagnostic] = []
    seen: set[tuple[str, Path, str]] = set()
    for error in errors:
        if _repeats(error, wrong_type, wrong_kind):
            continue
        for d in _explain(error, document):
            marker = (d.code, d.path, d.message)
            if marker not in seen:
                seen.add(marker)
                out.append(d)
    if not out:
        # The fast validator refused what the detailed one accepts: the schema's
        # patterns are written so that both agree, but a refusal is never overruled.
        out.append(diag("STR100", "the document does not match the workflow contract",
                        hint="please report this with the file that caused it"))
    if len(out) > MAX_SCHEMA_DIAGNOSTICS:
        rest = len(out) - MAX_SCHEMA_DIAGNOSTICS
        out = out[:MAX_SCHEMA_DIAGNOSTICS]
        out.append(diag("STR100", f"... and {rest} more schema errors",
                        hint="fix the ones above first"))
    return out


def _repeats(error: Any, wrong_type: set[Path], wrong_kind: set[Path]) -> bool:
    """Whether ``error`` only follows from another one: anything more said about a value
    of the wrong type (a lane that is a string is not a lane with a bad key), or what
    the contract asks of a kind of lane or job when the ``kind`` itself is wrong."""
    path = tuple(error.absolute_path)
    if path in wrong_type and error.validator != "type":
        return True
    conditional = {"then", "else"} & set(error.absolute_schema_path)
    return path in wrong_kind and bool(conditional)


def _where(path: Path, document: Any) -> str:
    """Name the place in words: "job 'draft'", "lane 'coder'", "the workflow"."""
    if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
        try:
            job_id = document["jobs"][path[1]].get("id")
        except (AttributeError, IndexError, KeyError, TypeError):
            job_id = None
        label = f"job {echo(job_id)}" if isinstance(job_id, str) else f"job #{path[1] + 1}"
        rest = path[2:]
    elif len(path) >= 2 and path[0] == "lanes":
        label, rest = f"lane {echo(path[1])}", path[2:]
    else:
        label, rest = "the workflow", path
    if rest:
        label += " at " + ".".join(clip(str(p)) for p in rest)
    return label


def _allowed_keys(schema: dict[str, Any]) -> list[str]:
    return sorted(schema.get("properties", {}))


def _explain(error: Any, document: Any) -> list[Diagnostic]:
    path: Path = tuple(error.absolute_path)
    where = _where(path, document)
    kind = error.validator
    schema_location = tuple(error.absolute_schema_path)
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = _allowed_keys(error.schema)
        out = []
        for key in error.instance:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(allowed)}"
                out.append(diag("STR101", f"unknown key {echo(key)} in {where}", (*path, key),
                                hint=hint, key=True))
        return out
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        if path[-1:] == ("revise",) and "max" in missing:
            rest = [k for k in missing if k != "max"]
            return [_unbounded(error.instance, path, document),
                    *(diag("STR102", f"{where} is missing required key {k!r}", path)
                      for k in rest)]
        name = missing[0] if missing else "?"
        if "then" in schema_location and name == "choices":
            return [diag("STR102", f"{where} is a checkpoint but has no 'choices'", path,
                         hint='add choices, e.g. {"continue": ["next"], "cancel": []}')]
        if "else" in schema_location and name == "command":
            return [diag("STR102", f"{where} has no 'command'", path,
                         hint="give the argv to run, or set \"kind\": \"operator\" or "
                              "\"human\"")]
        return [diag("STR102", f"{where} is missing required key {name!r}", path)]
    if kind == "not":
        return [_explain_not(error, path, where)]
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPES.get(n, n) for n in names)
        found = _JSON_TYPES.get(_json_type(error.instance), "something else")
        return [diag("STR103", f"{where} should be {wanted}, not {found}", path)]
    if kind in ("enum", "const"):
        options = error.validator_value if kind == "enum" else [error.validator_value]
        text_options = [str(o) for o in options]
        suggestion: str | None = None
        if isinstance(error.instance, str):
            suggestion = did_you_mean(error.instance, text_options)
        return [diag("STR104", f"{where}: {clip(json.dumps(error.instance))} is not one of "
                               f"{', '.join(text_options)}", path, hint=suggestion)]
    if kind == "pattern":
        container = _at(document, path)
        if isinstance(container, dict) and error.instance in container:
            # A propertyNames failure: the bad string is a key of this object.
            return [diag("STR105", f"{where}: {echo(error.instance)} is not a valid name",
                         (*path, error.instance), key=True, hint=_NAME_HINT)]
        return [_explain_pattern(error, path, where)]
    if kind == "propertyNames":
        return _explain_property_names(error, path, where)
    if kind == "oneOf" and path[-1:] == ("prompt",):
        if isinstance(error.instance, str):
            return [diag("STR104", f"{where}: prompt path {echo(error.instance)} must be relative "
                                   "and stay inside the workflow's folder", path)]
        return [diag("STR103", f"{where}: prompt must be a template file path or "
                               '{"text": "..."}', path)]
    if kind in ("minItems", "minProperties"):
        return [diag("STR104", f"{where} must not be empty", path)]
    if kind == "uniqueItems":
        return [diag("STR104", f"{where} lists the same item twice", path,
                     hint="remove the repeated entry")]
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        return [diag("STR104", f"{where} must be {bound} {error.validator_value}", path)]
    if kind == "maxLength":
        return [diag("STR104", f"{where} is longer than {error.validator_value:,} characters",
                     path)]
    if kind == "minLength":
        return [diag("STR104", f"{where} must not be empty", path)]
    return [diag("STR100", f"{where}: {clip(error.message)}", path)]


def _unbounded(revise: dict[str, Any], path: Path, document: Any) -> Diagnostic:
    """STR211 for a revise without ``max``: said the same whichever syntax was written
    (the DSL's `revise d` parses, so that the author hears why a bound matters)."""
    target = revise.get("target")
    back = f" back to {echo(target)}" if isinstance(target, str) else ""
    return diag("STR211", f"the revision loop of {_where(path[:-1], document)} has no bound",
                path, key=True,
                hint=f"give the revise a max (1 to 1000): how many more times it may send "
                     f"work{back}; then on_exhausted decides")


_NAME_HINT = ("use letters, digits, '_' and '-', starting with a letter or '_' "
              "(at most 64 characters; env names: letters, digits and '_')")


def _at(document: Any, path: Path) -> Any:
    node = document
    for part in path:
        try:
            node = node[part]
        except (IndexError, KeyError, TypeError):
            return None
    return node


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _explain_not(error: Any, path: Path, where: str) -> Diagnostic:
    instance = error.instance if isinstance(error.instance, dict) else {}
    if "revise" in instance and instance.get("kind", "task") != "review":
        return diag("STR106", f"{where} has 'revise', which only a review job may have",
                    (*path, "revise"), key=True,
                    hint='set "kind": "review", or remove "revise"')
    if "choices" in instance and instance.get("kind", "task") != "checkpoint":
        return diag("STR106", f"{where} has 'choices', which only a checkpoint may have",
                    (*path, "choices"), key=True,
                    hint='set "kind": "checkpoint", or remove "choices"')
    extra = [k for k in ("command", "stdin", "timeout", "env") if k in instance]
    if extra:
        return diag("STR106", f"{where} is a {instance.get('kind')} lane; "
                              f"{', '.join(repr(k) for k in extra)} apply only to command lanes",
                    (*path, extra[0]), key=True,
                    hint="remove them, or drop \"kind\" to make it a command lane")
    return diag("STR100", f"{where}: {clip(error.message)}", path)


def _explain_pattern(error: Any, path: Path, where: str) -> Diagnostic:
    value = error.instance
    defs = contract()["$defs"]
    if error.validator_value == defs["relpath"]["pattern"]:
        return diag("STR104", f"{where}: {echo(value)} must be a relative path that stays inside "
                              "the repository (no leading '/', no '..')", path)
    if error.validator_value == defs["identifier"]["pattern"]:
        return diag("STR105", f"{where}: {echo(value)} is not a valid name", path,
                    hint=_NAME_HINT)
    return diag("STR104", f"{where}: {echo(value)} does not match {error.validator_value}",
                path)


def _explain_property_names(error: Any, path: Path, where: str) -> list[Diagnostic]:
    out = []
    for sub in error.context or []:
        name = sub.instance
        if sub.validator == "pattern":
            out.append(diag("STR105", f"{where}: {echo(name)} is not a valid name", (*path, name),
                            key=True, hint=_NAME_HINT))
    if not out:
        out.append(diag("STR105", f"{where}: {clip(error.message)}", path))
    return out

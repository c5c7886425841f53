"""A tiny, deterministic YAML emitter for the generated documents.

The contracts depend on pydantic alone, and the documents are plain JSON data, so a small
block-style emitter suffices: keys keep their insertion order, strings are plain when that
cannot be misread (by YAML 1.1 or 1.2 readers) and JSON-quoted otherwise.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Plain only when a reader cannot take it for a number, bool, null, anchor, tag,
# comment or mapping key: starts with a letter, '_', '$' or '/', and avoids ':', '#',
# quotes at the start, and flow brackets.
_PLAIN = re.compile(r"[A-Za-z_$/][A-Za-z0-9_ .,;/$()\-+@=%'*<>!?&|~\"]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}


def _string(text: str) -> str:
    if (
        _PLAIN.fullmatch(text)
        and text.lower() not in _RESERVED
        and not text.endswith(" ")
        and "  " not in text
    ):
        return text
    return json.dumps(text, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 readers need a '.' in the mantissa to see a float.
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, str):
        return _string(value)
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    raise TypeError(f"cannot emit {type(value).__name__} as YAML")


def _literal(value: Any) -> bool:
    # A block literal keeps multi-line text readable; it cannot carry a trailing newline
    # ('|-' strips it), leading blanks, or control characters, which stay JSON-quoted.
    return (
        isinstance(value, str)
        and "\n" in value
        and not value.endswith("\n")
        and not value.startswith((" ", "\t"))
        and all(c.isprintable() or c in "\n\t" for c in value)
    )


def _block(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple)) and len(value) > 0


def _entry(head: str, value: Any) -> list[str]:
    """Lines for ``head`` ("key:" or "-") followed by ``value``."""
    if _literal(value):
        return [f"{head} |-", *(f"  {line}" if line else "" for line in value.split("\n"))]
    if not _block(value):
        return [f"{head} {_scalar(value)}"]
    body = _lines(value)
    if head == "-":
        # A nested block starts on the dash's line, the rest aligned under it.
        return [f"- {body[0]}", *(f"  {line}" if line else "" for line in body[1:])]
    return [head, *(f"  {line}" if line else "" for line in body)]


def _lines(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [
            line for key, value in node.items() for line in _entry(f"{_string(str(key))}:", value)
        ]
    return [line for item in node for line in _entry("-", item)]


def dump_yaml(data: Any) -> str:
    """Block-style YAML for JSON-like data (dicts, lists, str, int, float, bool, None)."""
    if not _block(data):
        return _scalar(data) + "\n"
    return "\n".join(_lines(data)) + "\n"

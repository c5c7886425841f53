"""Config files: YAML documents with ``kind:``, validated into config objects, every error
naming the file, the line and the field.

A file may hold many documents (``---``); a folder stands for its ``*.yaml`` and ``*.yml``
files. Everything is read and validated before anything is written, so a set of files is
applied whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hms_contracts.config import ConfigObject, parse_object
from hms_contracts.errors import ContractError
from pydantic import ValidationError

from .errors import InvalidObject

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Located:
    """A config object and where it was declared."""

    object: ConfigObject
    path: Path
    line: int


def config_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the YAML files of the folders named (sorted, not recursive)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise InvalidObject(f"{path}: no such file or folder")
    return files


def load_objects(
    paths: Sequence[Path],
    namespace: str | None = None,
    *,
    default_kind: str | None = None,
    default_namespace: str | None = None,
) -> list[Located]:
    """Every object declared in ``paths``; InvalidObject listing every error when any is
    invalid (nothing is returned then, so nothing is written).

    ``namespace`` is asked for (a document naming another is an error); ``default_kind`` and
    ``default_namespace`` only fill in a document that names none (``jobs apply`` reads the
    documents' job files, which carry neither).
    """
    found: list[Located] = []
    errors: list[str] = []
    defaults = {"kind": default_kind, "namespace": default_namespace}
    for path in config_files(paths):
        for item in _load_file(path, namespace, errors, defaults):
            found.append(item)
    seen: dict[str, Located] = {}
    for item in found:
        first = seen.setdefault(item.object.key(), item)
        if first is not item:
            errors.append(
                f"{item.path}:{item.line}: {item.object.kind} {item.object.name!r} in "
                f"{item.object.namespace} is declared again (first at {first.path}:{first.line})"
            )
    if errors:
        raise InvalidObject("\n".join(errors))
    if not found:
        raise InvalidObject(f"no config objects in {', '.join(str(p) for p in paths)}")
    return found


def _load_file(
    path: Path, namespace: str | None, errors: list[str], defaults: dict[str, str | None]
) -> list[Located]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read: {exc}")
        return []
    loader = yaml.SafeLoader(text)
    found: list[Located] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = loader.construct_document(node)
            if isinstance(data, dict):
                for field, value in defaults.items():
                    if value is not None and field not in data:
                        data[field] = value
            located = _parse(path, node, data, namespace, errors)
            if located is not None:
                found.append(located)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        errors.append(f"{path}:{line}: not valid YAML: {exc.problem or exc}")
    finally:
        loader.dispose()
    return found


def _parse(
    path: Path, node: yaml.Node, data: Any, namespace: str | None, errors: list[str]
) -> Located | None:
    line = node.start_mark.line + 1
    if data is None:
        return None
    if not isinstance(data, dict):
        errors.append(f"{path}:{line}: a document must be a mapping with kind:, not {data!r:.40}")
        return None
    what = f"{data.get('kind', 'object')} {data.get('name', data.get('id', '?'))!r}"
    try:
        obj = parse_object(data, namespace=namespace)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            field = ".".join(str(p) for p in loc) or "document"
            msg = str(err["msg"]).removeprefix("Value error, ")
            errors.append(f"{path}:{_line_of(node, loc)}: {what} field {field}: {msg}")
        return None
    except ContractError as exc:
        key = "kind" if "kind" in str(exc).split(":")[0] else "namespace"
        errors.append(f"{path}:{_line_of(node, (key,))}: {what}: {exc}")
        return None
    return Located(obj, path, line)


def _line_of(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The line of the field at ``loc`` (its key), or of the nearest enclosing one found;
    parts of a pydantic location that are not in the document (union tags) are skipped."""
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                continue
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                continue
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def dump_documents(objects: Iterable[ConfigObject]) -> str:
    """Objects as a multi-document YAML file, as ``hms-ops apply`` reads it."""
    docs = [obj.document() for obj in objects]
    return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True) if docs else ""

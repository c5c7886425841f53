"""``hms-ops apply | get | delete | history``: config objects in the registry, from the shell."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer
import yaml
from hms_contracts import specs
from hms_contracts.config import KINDS, parse_object
from nats.aio.client import Client
from rich.console import Console

from .configfiles import dump_documents, load_objects
from .configstore import ConfigStore, publish_changes
from .errors import ConflictError, HmsOpsError, InvalidObject, StackError
from .state import ADMIN_USER, StatePaths, admin_bus

T = TypeVar("T")

#: how long a registry command waits for the stack, connection included
TIMEOUT_S = 30.0

err = Console(stderr=True)

Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace of the objects.")
]
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="HMS_STATE_DIR", help="Where the stack keeps its state."),
]
Output = Annotated[
    Literal["yaml", "json"],
    typer.Option("--output", "-o", help="yaml (as apply reads it) or json."),
]


@asynccontextmanager
async def registry(paths: StatePaths) -> AsyncIterator[ConfigStore]:
    """The config registry of the stack running from ``paths``, as its admin; every write
    audited on the bus."""
    async with admin_bus(paths) as nc:
        js = nc.jetstream()
        kv = await js.key_value(specs.CONFIG.bucket)
        yield ConfigStore(kv, author=ADMIN_USER, on_change=publish_changes(js))


def on_bus(paths: StatePaths, work: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``work`` on a connection to the stack at ``paths``; errors become one line and an
    exit code."""

    async def go() -> T:
        async with admin_bus(paths) as nc:
            return await work(nc)

    return _one_line_errors(paths, go)


def on_registry(paths: StatePaths, work: Callable[[ConfigStore], Awaitable[T]]) -> T:
    """Run ``work`` on the registry of the stack at ``paths``; errors become one line and an
    exit code."""

    async def go() -> T:
        async with registry(paths) as store:
            return await work(store)

    return _one_line_errors(paths, go)


def _one_line_errors(paths: StatePaths, go: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))
    except TimeoutError:
        err.print(f"[red]error:[/] the stack running from {paths.root} did not answer in time")
        raise typer.Exit(2) from None
    except StackError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except (InvalidObject, ConflictError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except HmsOpsError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None


def apply_files(
    paths: StatePaths,
    files: list[Path],
    namespace: str | None,
    *,
    check: bool,
    kind: str | None = None,
    default_namespace: str | None = None,
) -> None:
    """Validate every document in ``files``, then (unless ``check``) apply them all or none.
    With ``kind``, documents that name none are of that kind, and no other kind is taken."""
    try:
        located = load_objects(
            files, namespace, default_kind=kind, default_namespace=default_namespace
        )
    except InvalidObject as exc:
        print(exc, file=sys.stderr)
        raise typer.Exit(1) from None
    others = [
        f"{i.path}:{i.line}: {i.object.kind}" for i in located if kind not in (None, i.object.kind)
    ]
    if others:
        # plain text: file:line references must not be wrapped
        print(f"error: only {kind} objects are taken here: {'; '.join(others)}", file=sys.stderr)
        raise typer.Exit(1)
    if check:
        print(f"{len(located)} objects valid")
        return
    changes = on_registry(paths, lambda s: s.apply([i.object for i in located]))
    for change in changes:
        print(f"{change.key} {change.action} (generation {change.generation})")


def _kind(kind: str) -> str:
    if kind not in KINDS:
        err.print(f"[red]error:[/] unknown kind {kind!r}; known: {', '.join(sorted(KINDS))}")
        raise typer.Exit(2)
    return kind


def register(app: typer.Typer, state_paths: Callable[[Path | None], StatePaths]) -> None:
    """Add the registry commands to ``app``."""

    @app.command()
    def apply(
        files: Annotated[
            list[Path], typer.Option("--filename", "-f", help="A YAML file or a folder of them.")
        ],
        namespace: Namespace = None,
        check: Annotated[
            bool, typer.Option("--check", help="Only validate; connect to nothing.")
        ] = False,
        state_dir: StateDir = None,
    ) -> None:
        """Create or update config objects from YAML (all of them, or none when one fails)."""
        apply_files(state_paths(state_dir), files, namespace, check=check)

    @app.command()
    def get(
        kind: Annotated[str, typer.Argument(help="metric, alert, playbook, ...")],
        name: Annotated[str | None, typer.Argument(help="One object; all when left out.")] = None,
        namespace: Namespace = None,
        output: Output = "yaml",
        state_dir: StateDir = None,
    ) -> None:
        """Print config objects of a kind (one namespace, or every one)."""
        _kind(kind)
        if name is not None and namespace is None:
            err.print("[red]error:[/] give --namespace with a name")
            raise typer.Exit(2)

        async def read(store: ConfigStore) -> list[dict[str, object]]:
            if name is not None:
                found = await store.get(namespace or "", kind, name)
                stored = [] if found is None else [found]
            else:
                stored = await store.objects(namespace or "*", kind)
            return [s.object.document() for s in stored]

        docs = on_registry(state_paths(state_dir), read)
        if name is not None and not docs:
            err.print(f"[red]error:[/] no {kind} {name!r} in {namespace}")
            raise typer.Exit(1)
        if output == "json":
            print(json.dumps(docs[0] if name else docs, indent=2))
        else:
            print(dump_documents(parse_object(d) for d in docs), end="")

    @app.command()
    def delete(
        kind: Annotated[str, typer.Argument(help="metric, alert, playbook, ...")],
        name: Annotated[str, typer.Argument(help="Name of the object.")],
        namespace: Annotated[str, typer.Option("--namespace", "-n", help="Its namespace.")],
        state_dir: StateDir = None,
    ) -> None:
        """Delete a config object (its history stays)."""
        _kind(kind)
        change = on_registry(state_paths(state_dir), lambda s: s.delete(namespace, kind, name))
        print(f"{change.key} {change.action}")

    @app.command()
    def history(
        kind: Annotated[str, typer.Argument(help="metric, alert, playbook, ...")],
        name: Annotated[str, typer.Argument(help="Name of the object.")],
        namespace: Annotated[str, typer.Option("--namespace", "-n", help="Its namespace.")],
        output: Output = "yaml",
        state_dir: StateDir = None,
    ) -> None:
        """Every version the registry keeps of an object, oldest first."""
        _kind(kind)
        versions = on_registry(state_paths(state_dir), lambda s: s.history(namespace, kind, name))
        entries = [v.entry.model_dump(mode="json") | {"revision": v.revision} for v in versions]
        if output == "json":
            print(json.dumps(entries, indent=2))
            return
        print(yaml.safe_dump_all(entries, sort_keys=False) if entries else "", end="")

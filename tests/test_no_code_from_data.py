"""CI gate: no project code evaluates data as code or runs a shell (ARCHITECTURE invariant 5).

The same rule as the before-stop hook: tests are exempt, everything else is scanned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(r"(^|[^.a-zA-Z_])(eval|exec)\(|shell=True|create_subprocess_shell")
SKIPPED_DIRS = {"tests", "node_modules", "build", "dist", "__pycache__"}


def project_sources(root: Path) -> Iterator[Path]:
    """Every .py file of the project, outside hidden directories (.venv, .git) and tests."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if any(p.startswith(".") or p in SKIPPED_DIRS for p in parts):
            continue
        yield path


def scan(paths: Iterable[Path], root: Path) -> list[str]:
    """``file:line: text`` for every line that evaluates code or runs a shell."""
    hits = []
    for path in paths:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return hits


def test_no_project_code_evaluates_data_or_runs_a_shell() -> None:
    sources = list(project_sources(ROOT))
    assert any(p.parts[-3:] == ("src", "hms_kit", "service.py") for p in sources)
    assert not any(".venv" in p.parts or "tests" in p.parts for p in sources)
    hits = scan(sources, ROOT)
    assert not hits, "code from data or a shell (never allowed):\n" + "\n".join(hits)


def test_the_gate_catches_a_planted_sample(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "planted.py").write_text(
        "import ast, subprocess\n"
        "ast.literal_eval('1')  # allowed: parses a literal, runs nothing\n"
        "value = eval(text)\n"
        "subprocess.run(cmd, shell=True)\n"
        "obj.exec(query)  # allowed: a method that happens to be called exec\n"
        "exec(code)\n"
        "await asyncio.create_subprocess_shell(cmd)\n"
    )
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "lib.py").write_text("eval(x)\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("eval(x)\n")

    hits = scan(project_sources(tmp_path), tmp_path)

    assert [h.split(": ", 1)[0] for h in hits] == [
        "pkg/planted.py:3",
        "pkg/planted.py:4",
        "pkg/planted.py:6",
        "pkg/planted.py:7",
    ]

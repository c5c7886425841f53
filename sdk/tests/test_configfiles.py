"""Config files: every error names the file, the line and the field; nothing half-loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from hms_contracts.config import Alert
from hms_ops.configfiles import dump_documents, load_objects
from hms_ops.errors import InvalidObject


def test_a_nested_field_error_points_at_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "kind: playbook\nnamespace: acme\nname: rollback\nsteps:\n"
        "  - notify oncall done\n  - action: run\n    argv: []\n"
    )
    with pytest.raises(InvalidObject, match=rf"{path}:7: playbook 'rollback' field steps.1"):
        load_objects([path])


def test_an_unknown_kind_and_a_yaml_syntax_error_are_located(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("kind: metric\nnamespace: acme\nname: a\n---\nkind: jobz\nname: b\n")
    with pytest.raises(InvalidObject, match=rf"{path}:5: jobz 'b': kind 'jobz' is not"):
        load_objects([path])
    path.write_text("kind: metric\nname: [unclosed\n")
    with pytest.raises(InvalidObject, match=rf"{path}:3: not valid YAML"):
        load_objects([path])


def test_the_namespace_option_fills_documents_and_refuses_another(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("kind: metric\nname: a\n")
    [found] = load_objects([path], namespace="acme")
    assert found.object.key() == "acme.metric.a"
    path.write_text("kind: metric\nname: a\nnamespace: other\n")
    with pytest.raises(InvalidObject, match=rf"{path}:3: metric 'a': namespace"):
        load_objects([path], namespace="acme")


def test_an_object_declared_twice_is_refused_with_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: metric\nnamespace: acme\nname: a\n")
    (tmp_path / "b.yml").write_text("# again\nkind: metric\nnamespace: acme\nname: a\n")
    with pytest.raises(InvalidObject, match=r"b.yml:2: metric 'a' in acme is declared again"):
        load_objects([tmp_path])


def test_what_get_prints_is_what_apply_reads(tmp_path: Path) -> None:
    rule = Alert(namespace="acme", name="slow", metric="api.p99", condition="> 1", window="5m")  # type: ignore[arg-type]
    path = tmp_path / "out.yaml"
    path.write_text(dump_documents([rule, rule.model_copy(update={"name": "slower"})]))
    loaded = [f.object for f in load_objects([path])]
    assert loaded == [rule, rule.model_copy(update={"name": "slower"})]

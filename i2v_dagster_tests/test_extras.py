"""``require_extra``: one line naming the missing package and the install command."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from i2v_dagster import extras
from i2v_dagster.errors import I2VError
from i2v_dagster.extras import MissingExtraError, require_extra

HUB_LINE = (
    "prefetch needs huggingface_hub, which comes with the [models] extra: "
    "pip install -c constraints.txt -e '.[models]'"
)


def test_returns_the_module_when_installed():
    assert require_extra("json", "reading specs") is json


def test_missing_module_names_package_extra_and_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now fails
    with pytest.raises(MissingExtraError) as info:
        require_extra("huggingface_hub", "prefetch")
    assert str(info.value) == HUB_LINE
    assert info.value.name == "huggingface_hub"
    assert isinstance(info.value, ImportError) and isinstance(info.value, I2VError)
    assert info.value.__suppress_context__, "the bare 'No module named' is not chained onto the line"


def test_missing_parent_package_of_a_submodule():
    with pytest.raises(MissingExtraError) as info:
        require_extra("i2v_no_such_pkg.sub", "a report", extra="dev")
    assert str(info.value) == (
        "a report needs i2v_no_such_pkg.sub, which comes with the [dev] extra: "
        "pip install -c constraints.txt -e '.[dev]'"
    )


def test_installed_module_with_a_broken_import_is_not_blamed_on_the_extra(monkeypatch, tmp_path):
    (tmp_path / "i2v_broken_module.py").write_text("import i2v_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require_extra("i2v_broken_module", "a test")
    assert not isinstance(info.value, MissingExtraError)
    assert info.value.name == "i2v_no_such_dependency"


def test_extras_module_imports_nothing_heavy():
    tree = ast.parse(Path(extras.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "importlib", "importlib.util", "types", "i2v_dagster.errors"}, imported

"""The layers of docs/architecture.md, enforced: import-linter's contracts (pyproject.toml) hold, fail on a
planted wrong-way import, cover every package; no private name is used across packages."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "engines", "exporters", "tools")  # installed as moodwire.<name> (moodwire/<name> links)
CLIENT = ROOT / "moodwire"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "lint-imports"
    command = [str(script)] if script.exists() else \
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]
    return subprocess.run([*command, "--no-cache"], cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
                          capture_output=True, text=True, timeout=300)


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_contracts_hold():
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    names = [c["name"] for c in contracts()]
    assert len(names) == 4 and all(f"{name} KEPT" in " ".join(out.stdout.split()) for name in names), out.stdout


@pytest.mark.slow
def test_a_planted_wrong_way_import_or_torch_in_a_node_breaks_them(tmp_path):
    shutil.copytree(CLIENT, tmp_path / "moodwire", symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    messages = tmp_path / "moodwire" / "pipeline" / "core" / "messages.py"
    messages.write_text(messages.read_text() + "\nfrom moodwire.pipeline.face import step  # planted: core -> logic\n")
    vad = tmp_path / "moodwire" / "pipeline" / "nodes" / "vad.py"
    vad.write_text(vad.read_text() + "\nimport torch  # planted: a node imports torch\n")
    out = lint_imports(tmp_path)
    text = " ".join(out.stdout.split())
    assert out.returncode == 1, out.stdout[-4000:] + out.stderr[-2000:]
    assert "moodwire.pipeline.core.messages -> moodwire.pipeline.face.step" in text
    assert "moodwire.pipeline.nodes.vad -> torch" in text
    assert "Contracts: 0 kept, 4 broken." in text, text[-2000:]  # the core import breaks the client one too


def module_names() -> dict[str, Path]:
    """Every module of the installed name, as it is imported, and its file."""
    found = {f"moodwire.{p.stem}": p for p in CLIENT.glob("*.py") if p.stem != "__init__"}
    for name in PACKAGES:
        for path in (ROOT / name).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(("moodwire", *(parts[:-1] if parts[-1] == "__init__" else parts)))] = path
    return found


def test_every_package_and_module_stands_in_a_layer():
    declared = set()
    for contract in contracts():
        for entry in (*contract.get("layers", ()), *contract.get("source_modules", ())):
            declared |= {name.strip() for name in entry.split("|")}
    outside = []
    for module in module_names():
        parts = module.split(".")
        ancestors = {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
        if module not in ("moodwire.pipeline", "moodwire.engines", "moodwire.exporters", "moodwire.tools") \
                and not ancestors & declared:
            outside.append(module)
    assert not outside, f"modules in no layer of pyproject.toml's contracts: {outside}"


def imported_names(tree: ast.AST, package: str) -> list[tuple[int, str, str]]:
    """(line, module, name) of every ``from module import name``, relative imports resolved."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            out += [(node.lineno, module, alias.name) for alias in node.names]
    return out


def test_no_private_name_is_used_across_packages():
    """``_name`` stays inside the package that defines it (the old engines.loader._matches_sidecar did not)."""
    crossing = []
    for module, path in module_names().items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        for line, source, name in imported_names(tree, package):
            if name.startswith("_") and not name.startswith("__") and source.rsplit(".", 1)[0] != package \
                    and source != package:
                crossing.append(f"{path.relative_to(ROOT)}:{line}: {source}.{name}")
        modules = {a.asname or a.name: a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {name: f"{source}.{name}" for _, source, name in imported_names(tree, package)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") and modules.get(node.value.id, "").startswith("moodwire") \
                    and not modules[node.value.id].startswith(package):
                crossing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {modules[node.value.id]}.{node.attr}")
    assert not crossing


def test_nothing_imports_the_folders_by_their_old_top_level_names():
    """Only ``moodwire`` is installed: an import of ``pipeline`` (or engines, exporters, tools) would find a
    user's own package of that name, or none (tests and examples included)."""
    stale = []
    for path in [*module_names().values(), *(ROOT / "tests").glob("*.py"), *(ROOT / "examples").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            stale += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in PACKAGES]
    assert not stale

"""Packaging: `pip install llmconfig` is the client; `llmconfig[server]` adds the server.

The rules are checked against the code itself: what each package imports must be installed by
what its install line declares (directly or through those packages' own requirements), and the
client must import and work with every server-only library unavailable.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OWN = {"llmconfig", "llmconfig_server"}
# Libraries only `llmconfig[server]` installs; the client must never need one of them.
SERVER_ONLY = ("pydantic", "yaml", "httpx", "grpc_health", "grpc_reflection", "llmconfig_server")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements install, their own requirements included."""
    todo = [_name(r) for r in requirements if _name(r) != "llmconfig"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # its marker excludes it on this Python
            continue
        for req in requires:
            if "extra ==" not in req:  # an extra's requirement is not installed by the name
                todo.append(_name(req))
    return seen


def _third_party_imports(package: Path) -> set[str]:
    """Top-level module names imported anywhere in the package (generated stubs included)."""
    names: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    tops = {name.split(".")[0] for name in names}
    return {top for top in tops - OWN if top not in sys.stdlib_module_names and top != "__future__"}


def _unprovided(package: Path, requirements: list[str]) -> set[str]:
    installed = _closure(requirements)
    providers = metadata.packages_distributions()
    return {
        top for top in _third_party_imports(package)
        if not {d.lower().replace("_", "-") for d in providers.get(top, [])} & installed
    }


def test_client_imports_are_installed_by_the_base_dependencies() -> None:
    # langchain is imported lazily by chat_model() and has its own extra.
    missing = _unprovided(ROOT / "client" / "llmconfig", PYPROJECT["project"]["dependencies"])
    assert missing <= {"langchain_anthropic", "langchain_ollama", "langchain_openai"}


def test_server_imports_are_installed_by_the_server_extra() -> None:
    project = PYPROJECT["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["server"]
    assert _unprovided(ROOT / "server" / "llmconfig_server", requirements) == set()


def test_base_dependencies_carry_no_server_library() -> None:
    installed = _closure(PYPROJECT["project"]["dependencies"])
    assert not installed & {"pydantic", "pyyaml", "httpx", "grpcio-health-checking",
                            "grpcio-reflection"}


def test_dev_extra_includes_the_server_extra() -> None:
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    assert any(re.fullmatch(r"llmconfig\[.*\bserver\b.*\]", r) for r in dev)


def test_client_works_with_server_libraries_unavailable() -> None:
    # A fresh interpreter where importing any server-only library fails, as in an environment
    # that installed only `llmconfig`: the client, its models and its CLI must still load.
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {SERVER_ONLY!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None
        sys.meta_path.insert(0, Block())
        import llmconfig, llmconfig._cli
        for name in llmconfig._LAZY:
            getattr(llmconfig, name)
        with llmconfig.Client("127.0.0.1:1") as client:
            pass
        try:
            llmconfig._cli.main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_server_command_names_the_extra_when_its_libraries_are_missing() -> None:
    # sys.modules[name] = None: importing it fails and find_spec finds nothing, as when absent.
    script = textwrap.dedent(f"""
        import sys
        for name in {SERVER_ONLY[:-1]!r}:
            sys.modules[name] = None
        from llmconfig_server._entry import run
        run()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert "pip install 'llmconfig[server]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_server_command_checks_for_every_library_of_the_server_extra() -> None:
    from llmconfig_server._entry import SERVER_LIBRARIES

    client_provided = _closure(PYPROJECT["project"]["dependencies"])
    providers = metadata.packages_distributions()
    server_only = {
        top for top in _third_party_imports(ROOT / "server" / "llmconfig_server")
        if not {d.lower().replace("_", "-") for d in providers.get(top, [])} & client_provided
    }
    assert set(SERVER_LIBRARIES) == server_only

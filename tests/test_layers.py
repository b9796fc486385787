"""The server package's layers: each subpackage imports only from the ones before it.

    support ← resolve ← sources ← health ← rpc ← access ← live ← observe ← (service, app, flags)

`support` needs nothing of ours; the cascade (`resolve`) knows nothing of gRPC, files or the
network; only the modules at the top (`service`, `app`, `flags`, `__main__`) see everything. An
import under `if TYPE_CHECKING:` is for annotations only and does not count. Every package's
`__init__.py` is a docstring: importing a package costs nothing (cold start) and pulls in no
httpx, pydantic or YAML.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "server" / "llmconfig_server"
LAYERS = ["support", "resolve", "sources", "health", "rpc", "access", "live", "observe"]
GRPC = ("grpc", "google.protobuf", "llmconfig.v1")


def runtime_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import that runs when `path` is imported or called."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "llmconfig_server" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else "top"


def modules_in(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_the_layers_before_it(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    wrong = [f"{path.relative_to(PACKAGE)}:{line} imports {module}"
             for path in modules_in(layer) for line, module in runtime_imports(path)
             if layer_of(module) not in (None, *allowed)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("layer", ["support", "resolve", "sources", "health"])
def test_the_layers_below_rpc_know_nothing_of_grpc(layer):
    wrong = [f"{path.relative_to(PACKAGE)}:{line} imports {module}"
             for path in modules_in(layer) for line, module in runtime_imports(path)
             if module.startswith(GRPC)]
    assert not wrong, "\n".join(wrong)


def test_every_module_of_the_package_is_in_a_layer_or_at_the_top():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "_entry.py", "app.py", "flags.py", "service.py"}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS)


@pytest.mark.parametrize("init", sorted(PACKAGE.rglob("__init__.py")), ids=str)
def test_a_package_init_imports_nothing_heavy(init):
    heavy = [module for _, module in runtime_imports(init)
             if module.split(".")[0] in ("httpx", "pydantic", "yaml", "grpc", "watchfiles",
                                         "prometheus_client")]
    assert not heavy, f"{init.relative_to(PACKAGE)} imports {heavy}"

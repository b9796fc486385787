"""Mutation testing of the security modules: would a test notice if this line were wrong?

    python tools/mutation.py [--modules access,tokens] [--sample N] [--timeout S] [--tests ...]

1. Map: the tests run once under coverage, each test in a coverage context of its own, so every
   line knows the tests that execute it (in-process servers included: coverage follows threads).
2. Mutants: for every line of the modules, small AST changes — comparison and boolean operators
   swapped, `in` turned into a prefix test (the SSRF class of bug), constants changed, `not`
   dropped, a condition forced true or false, an operand of `and`/`or` dropped, a statement
   removed (`raise`, a call, `continue`), a returned value replaced by None.
3. Each mutant is written over the module in place (a copy is kept and put back whatever
   happens, also by the next run if this one was killed) and only the tests that execute the
   mutated line run against it, the module's own test files first, stopping at the first
   failure, with a per-mutant timeout. A mutant is killed when a test fails (or the run times
   out); it survives when they all pass; a line no test executes is `not run`.
4. Prints a score per module (killed / mutants) and every survivor, and writes
   .mutation/results-MODULES.json.

Not part of `make test` (minutes to hours). Server processes started by tests
(`server_process`) import the mutated file too, but the map does not see their lines: such a
line is only run by the tests that also execute it in-process.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "server" / "llmconfig_server"
WORK = ROOT / ".mutation"
MODULES = ("access", "tokens", "redact", "network", "parsing", "state", "probes")
# Where each module lives in the package's layers (docs/development.md).
PATHS = {"access": "access/guard.py", "tokens": "access/tokens.py", "redact": "support/redact.py",
         "network": "resolve/network.py", "parsing": "resolve/parsing.py",
         "state": "live/state.py", "probes": "health/probes"}
# The map leaves these out: they render the manifests, run the docs, build wheels, or drive
# LangChain models; none of them is about the modules mutated here.
SKIPPED_TESTS = ("test_deploy.py", "test_docs.py", "test_packaging.py", "test_langchain.py",
                 "test_chat.py")
PYTHON = sys.executable


def own_name(file: Path) -> str:
    """The module's name before the layers (access/guard.py is `access`): its test file's."""
    for name, path in PATHS.items():
        if file == PACKAGE / path:
            return name
    return file.stem


def module_files(names: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in names:
        if name == "probes":
            files += sorted(p for p in (PACKAGE / PATHS[name]).glob("*.py")
                            if p.name != "__init__.py")
        else:
            files.append(PACKAGE / PATHS.get(name, f"{name}.py"))
    return files


# -- 1. which tests execute which line --------------------------------------------------------

MAP_RUNNER = """
import sys, coverage, pytest
data_file, include, args = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
cov = coverage.Coverage(data_file=data_file, include=include)
failed = set()
class Contexts:
    def pytest_runtest_setup(self, item): cov.switch_context(item.nodeid)
    def pytest_runtest_teardown(self, item): cov.switch_context(item.nodeid)
    def pytest_runtest_logreport(self, report):
        if report.failed: failed.add(report.nodeid)
cov.start()
try:
    code = pytest.main(args, plugins=[Contexts()])
finally:
    cov.stop(); cov.save()
    import json; open(data_file + ".failed", "w").write(json.dumps(sorted(failed)))
sys.exit(0 if code in (0, 1) else code)
"""


def coverage_map(files: list[Path], tests: list[str]) -> dict[str, dict[int, list[str]]]:
    """{file: {line: [test node ids]}} from one run of the tests under coverage."""
    import coverage

    WORK.mkdir(exist_ok=True)
    data_file = WORK / "coverage"
    data_file.unlink(missing_ok=True)
    runner = WORK / "map_runner.py"
    runner.write_text(MAP_RUNNER)
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    started = time.monotonic()
    subprocess.run([PYTHON, str(runner), str(data_file), ",".join(map(str, files)), *args],
                   cwd=ROOT, check=True)
    print(f"map: tests ran under coverage in {time.monotonic() - started:.0f} s", flush=True)
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    # A test that fails without a mutant says nothing about one: it runs for none.
    failed = set(json.loads(Path(f"{data_file}.failed").read_text()))
    known = WORK / "failed.json"
    known.write_text(json.dumps(sorted(failed | set(
        json.loads(known.read_text()) if known.exists() else ()))))
    if failed:
        print(f"map: left out, failing without a mutant: {', '.join(sorted(failed))}")
    result: dict[str, dict[int, list[str]]] = {}
    for file in files:
        by_line = data.contexts_by_lineno(str(file))
        result[str(file)] = {line: sorted(c for c in contexts if c and c not in failed)
                             for line, contexts in by_line.items()}
    return result


# -- 2. mutants ------------------------------------------------------------------------------

@dataclass
class Mutant:
    file: str
    line: int
    kind: str
    index: int  # the node's position in ast.walk order
    variant: int = 0
    status: str = ""
    seconds: float = 0.0
    tests: int = 0
    shown: str = ""


SWAP_COMPARE: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
    ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
SWAP_BINOP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
}
# `a in b` as a prefix test: a string starting with `a`, or any member that `a` starts with.
PREFIX_IN = ("(lambda a, b: b.startswith(a) if isinstance(b, str) else any(isinstance(a, str) "
             "and isinstance(e, str) and a.startswith(e) for e in b))")


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """Nodes not worth mutating: docstrings, annotations, `if TYPE_CHECKING`, logging calls'
    arguments, and what sits inside an f-string (message wording)."""
    skip: set[int] = set()

    def all_of(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            all_of(body[0])
        if isinstance(node, ast.AnnAssign):
            all_of(node.annotation)
        if isinstance(node, ast.arg):
            all_of(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            all_of(node.returns)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and \
                node.test.id == "TYPE_CHECKING":
            all_of(node)
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node) if isinstance(n, ast.Constant))
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            all_of(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(
                node.func.value, ast.Name) and node.func.value.id == "log":
            all_of(node)
    return skip


def _variants(node: ast.AST) -> Iterator[str]:
    """The kinds of mutant a node admits, one per variant."""
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        if (op := type(node.ops[0])) in SWAP_COMPARE:
            yield f"compare {op.__name__}->{SWAP_COMPARE[op].__name__}"
        if isinstance(node.ops[0], ast.In):
            yield "in->prefix"
    elif isinstance(node, ast.BoolOp):
        yield "and<->or"
        for i in range(len(node.values)):
            yield f"drop operand {i + 1}"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop not"
    elif isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINOP:
        yield f"binop {type(node.op).__name__}->{SWAP_BINOP[type(node.op)].__name__}"
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            yield "bool flip"
        elif isinstance(node.value, int | float):
            yield "number+1"
        elif isinstance(node.value, str) and 0 < len(node.value) <= 24:
            yield "string->''"
    elif isinstance(node, ast.If | ast.While | ast.IfExp):
        yield "condition->True"
        yield "condition->False"
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        yield "return None"
    elif isinstance(node, ast.Raise | ast.AugAssign | ast.Continue | ast.Break) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await)):
        yield "remove statement"


def _apply(node: ast.AST, variant: int) -> ast.AST:
    """The node after its `variant`-th mutation (a new node where the shape changes)."""
    kind = list(_variants(node))[variant]
    if kind.startswith("compare"):
        assert isinstance(node, ast.Compare)
        node.ops = [SWAP_COMPARE[type(node.ops[0])]()]
        return node
    if kind == "in->prefix":
        assert isinstance(node, ast.Compare)
        call = ast.parse(PREFIX_IN, mode="eval").body
        return ast.Call(func=call, args=[node.left, node.comparators[0]], keywords=[])
    if kind == "and<->or":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return node
    if kind.startswith("drop operand"):
        assert isinstance(node, ast.BoolOp)
        rest = [v for i, v in enumerate(node.values) if i != int(kind.split()[-1]) - 1]
        if len(rest) == 1:
            return rest[0]
        node.values = rest
        return node
    if kind == "drop not":
        assert isinstance(node, ast.UnaryOp)
        return node.operand
    if kind.startswith("binop"):
        assert isinstance(node, ast.BinOp)
        node.op = SWAP_BINOP[type(node.op)]()
        return node
    if kind == "bool flip":
        assert isinstance(node, ast.Constant)
        node.value = not node.value
        return node
    if kind == "number+1":
        assert isinstance(node, ast.Constant)
        node.value = node.value + 1
        return node
    if kind == "string->''":
        assert isinstance(node, ast.Constant)
        node.value = ""
        return node
    if kind.startswith("condition"):
        assert isinstance(node, ast.If | ast.While | ast.IfExp)
        node.test = ast.Constant(kind.endswith("True"))
        return node
    if kind == "return None":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(None)
        return node
    assert kind == "remove statement"
    return ast.Pass()


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, variant: int) -> None:
        self.target, self.variant = target, variant

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return _apply(node, self.variant)
        return super().visit(node)


def mutants_of(file: Path) -> list[Mutant]:
    tree = ast.parse(file.read_text())
    skip = _skipped_nodes(tree)
    found = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        for variant, kind in enumerate(_variants(node)):
            found.append(Mutant(str(file), node.lineno, kind, index, variant))
    return found


def mutated_source(mutant: Mutant, original: str) -> str | None:
    tree = ast.parse(original)
    target = list(ast.walk(tree))[mutant.index]
    before = ast.unparse(tree)
    mutated = _Replace(target, mutant.variant).visit(tree)
    ast.fix_missing_locations(mutated)
    text = ast.unparse(mutated)
    return None if text == before else text


# -- 3. running -------------------------------------------------------------------------------

def _backup(file: Path) -> Path:
    return WORK / "backup" / file.relative_to(ROOT)


def restore_all() -> None:
    """Put back any module a killed run left mutated."""
    for saved in (WORK / "backup").rglob("*.py") if (WORK / "backup").exists() else ():
        target = ROOT / saved.relative_to(WORK / "backup")
        shutil.copyfile(saved, target)
        _drop_bytecode(target)
        saved.unlink()


def _drop_bytecode(file: Path) -> None:
    for cached in (file.parent / "__pycache__").glob(f"{file.stem}.*.pyc"):
        cached.unlink(missing_ok=True)


def ordered_tests(tests: list[str], file: Path) -> list[str]:
    """The pins first, then the module's own test file (most likely to fail fast), the rest."""
    order = ("test_mutation_pins.py", f"test_{own_name(file)}.py")

    def rank(test: str) -> int:
        name = test.split("::")[0].rsplit("/", 1)[-1]
        return order.index(name) if name in order else len(order)

    return sorted(tests, key=rank)


def run_mutant(mutant: Mutant, tests: list[str], timeout: float) -> None:
    file = Path(mutant.file)
    original = file.read_text()
    text = mutated_source(mutant, original)
    if text is None:
        mutant.status = "equal"
        return
    mutant.shown = _shown(original, mutant)
    if not tests:
        mutant.status = "not run"
        return
    backup = _backup(file)
    backup.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, backup)
    args_file = WORK / "tests.txt"
    args_file.write_text("\n".join(ordered_tests(tests, file)) + "\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    try:
        file.write_text(text)
        _drop_bytecode(file)
        # A session of its own: on timeout the run and the servers it started stop together.
        run = subprocess.Popen(
            [PYTHON, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"@{args_file}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        try:
            mutant.status = "survived" if run.wait(timeout=timeout) == 0 else "killed"
        except subprocess.TimeoutExpired:
            mutant.status = "timeout"
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
    finally:
        shutil.copyfile(backup, file)
        _drop_bytecode(file)
        backup.unlink()
    mutant.seconds = round(time.monotonic() - started, 1)
    mutant.tests = len(tests)


def _shown(original: str, mutant: Mutant) -> str:
    line = original.splitlines()[mutant.line - 1].strip()
    return line[:90]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", default=",".join(MODULES))
    parser.add_argument("--sample", type=int, default=0,
                        help="run at most N mutants per module, picked at random (0: all)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    parser.add_argument("--tests", nargs="*", default=None,
                        help="test files for the map (default: tests/ but " +
                        ", ".join(SKIPPED_TESTS) + ")")
    parser.add_argument("--reuse-map", action="store_true",
                        help="use .mutation/map.json from the last run")
    parser.add_argument("--remap", nargs="*", default=(),
                        help="with --reuse-map: run these test files under coverage again and "
                        "put what they execute into the map (after adding or changing tests)")
    options = parser.parse_args()
    # Stopped from outside: the mutated module is put back (run_mutant's finally) on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    restore_all()
    files = module_files(options.modules.split(","))
    tests = options.tests or [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob(
        "test_*.py")) if p.name not in SKIPPED_TESTS]
    map_file = WORK / "map.json"
    if options.reuse_map and map_file.exists():
        by_file = {f: {int(k): v for k, v in lines.items()}
                   for f, lines in json.loads(map_file.read_text()).items()}
        if options.remap:
            again = coverage_map(module_files(list(MODULES)), options.remap)
            for name, lines in by_file.items():
                for ids in lines.values():
                    ids[:] = [i for i in ids if i.split("::")[0] not in options.remap]
                for line, ids in again.get(name, {}).items():
                    lines[line] = sorted({*lines.get(line, []), *ids})
            map_file.write_text(json.dumps(by_file))
    else:
        by_file = coverage_map(module_files(list(MODULES)), tests)
        map_file.write_text(json.dumps(by_file))
    if (WORK / "failed.json").exists():
        failed = set(json.loads((WORK / "failed.json").read_text()))
        for lines in by_file.values():
            for ids in lines.values():
                ids[:] = [i for i in ids if i not in failed]
    results: list[Mutant] = []
    started = time.monotonic()
    for file in files:
        mutants = mutants_of(file)
        if options.sample and len(mutants) > options.sample:
            mutants = sorted(random.Random(options.seed).sample(mutants, options.sample),
                             key=lambda m: (m.line, m.index, m.variant))
        lines = by_file.get(str(file), {})
        # A line run only on import (a constant, a default, a decorator) belongs to no test:
        # every test that runs any of the module's code is asked instead.
        # (The pins and the module's own tests first, at most 150: a survivor must not run into the
        # timeout only because it runs every test.)
        # A constant may be read only by a test that runs none of the module's lines (a table
        # compared with the contract): the pins and the module's test file run whole.
        whole = [f"tests/{name}" for name in ("test_mutation_pins.py", f"test_{own_name(file)}.py")
                 if (ROOT / "tests" / name).exists()]
        on_import = whole + [t for t in ordered_tests(sorted(
            {t for ids in lines.values() for t in ids}), file) if t.split("::")[0] not in whole
        ][:150]
        for mutant in mutants:
            ids = lines.get(mutant.line)
            run_mutant(mutant, on_import if ids == [] else ids or [], options.timeout)
            if mutant.status != "equal":
                results.append(mutant)
                print(f"{mutant.status:9} {file.relative_to(ROOT)}:{mutant.line} {mutant.kind}"
                      f" ({mutant.tests} tests, {mutant.seconds} s)", flush=True)
    report(results, files, time.monotonic() - started, options)
    return 0


def report(results: list[Mutant], files: list[Path], seconds: float,
           options: argparse.Namespace) -> None:
    print(f"\nmutation score (killed or timed out / mutants), {seconds / 60:.1f} min"
          + (f", sample of {options.sample} per module" if options.sample else ""))
    for file in files:
        mine = [m for m in results if m.file == str(file)]
        killed = sum(m.status in ("killed", "timeout") for m in mine)
        score = 100 * killed / len(mine) if mine else 100.0
        print(f"  {file.relative_to(PACKAGE)!s:28} {score:5.1f} %  {killed}/{len(mine)}"
              f"  (not run by any test: {sum(m.status == 'not run' for m in mine)})")
    survivors = [m for m in results if m.status in ("survived", "not run")]
    if survivors:
        print("\nsurvivors:")
        for m in survivors:
            print(f"  {Path(m.file).relative_to(PACKAGE)}:{m.line} [{m.kind}] {m.status}: "
                  f"{m.shown}")
    name = options.modules.replace(",", "-")
    (WORK / f"results-{name}.json").write_text(json.dumps([asdict(m) for m in results], indent=1))


if __name__ == "__main__":
    sys.exit(main())

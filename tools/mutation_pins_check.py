"""The mutants issue 15 row 17 named, applied by hand one at a time: each must make a test of
tests/test_mutation_pins.py fail. `python tools/mutation_pins_check.py [NAME…]` prints KILLED or
SURVIVED per mutant and puts the module back after each. A check of the pins themselves, not
part of `make test`; never run it beside `make mutation` (both edit the modules in place)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server" / "llmconfig_server"

# (name, module, [(text, replaced by)], pytest -k expression)
MUTANTS: list[tuple[str, str, list[tuple[str, str]], str]] = [
    ("proven-token cache keyed by an 8-character prefix", "access/tokens.py", [
        ("self._proven.get(presented)", "self._proven.get(presented[:8])"),
        ("self._proven[presented] = found", "self._proven[presented[:8]] = found")],
     "proven_token"),
    ("probe allow-list `in` loosened to startswith", "health/checker.py", [
        ("base_url in self.allowed_targets",
         "any(base_url.startswith(t) for t in self.allowed_targets)")], "probe_target"),
    ("an RPC missing from the scope table left open", "access/guard.py", [
        ("if scope is None or scope not in caller.scopes",
         "if scope is not None and scope not in caller.scopes")], "scope_table"),
    ("an RPC missing from the scope table given `resolve`", "access/guard.py", [
        ("scope = SCOPE_FOR_RPC.get(rpc)", "scope = SCOPE_FOR_RPC.get(rpc, 'resolve')")],
     "scope_table"),
    ("WatchLLMConfig needing health", "access/guard.py", [
        ('"WatchLLMConfig": "resolve"', '"WatchLLMConfig": "health"')], "watch"),
    ("ListModels left out of the scope table", "access/guard.py", [
        ('    "ListModels": "resolve",\n', '')], "list_models or every_rpc"),
    ("any metadata key starting `auth` taken as the token", "access/guard.py", [
        ('if key == "authorization" and', 'if key.startswith("auth") and')],
     "authorization_key"),
    ("redaction of URLs in text stopping at the first @", "support/redact.py", [
        ("""[^/?#\\s'\\"]*@")""", """[^/?#\\s'\\"@]*@")""")], "at_sign"),
    ("redaction of scheme-less userinfo stopping at the first @", "support/redact.py", [
        ("""+:[^/?#\\s'\\"]*@(?=""", """+:[^/?#\\s'\\"@]*@(?=""")], "at_sign"),
    ("redact_url splitting at the first @", "support/redact.py", [
        ('parts.netloc.rpartition("@")', 'parts.netloc.partition("@")')], "at_sign"),
    ("a same-layer base-URL contradiction downgraded to a warning", "resolve/cascade.py", [
        ("if rank <= provider_rank:", "if rank < provider_rank:")], "own_layer"),
    ("the degraded snapshot keeping the old answer cache", "live/state.py", [
        ("return replace(self, answers=AnswerCache(), events=EventCache(),",
         "return replace(self, events=EventCache(),")], "broken_reload"),
]
ENTRY_CHECKS: list[list[tuple[str, str]]] = [  # the tokens file's entry checks, each removed
    [('problems.append(f"{where}: expected a mapping with name, sha256 and scopes")\n', '')],
    [('if extra := sorted(', 'if False and (extra := sorted('),
     ('- {"name", "sha256", "scopes"}):', '- {"name", "sha256", "scopes"})):')],
    [('if not (isinstance(name, str) and valid_name(name)):', 'if not isinstance(name, str):')],
    [('if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):',
      'if not isinstance(digest, str):')],
    [('if not (isinstance(scopes, list) and scopes\n', 'if not (isinstance(scopes, list)\n')],
    [('and s in SCOPES for s in scopes)', 'for s in scopes)')],
    [('if names.count(n) > 1]', 'if False]')],
    [('if len(set(digests)) != len(digests):', 'if False:')],
    [('if not isinstance(raw, list):', 'if False:')],
    [('or set(document) != {"tokens"}:', ':')],
    [('re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")', 're.compile(r"[A-Za-z0-9._-]{0,64}")')],
    [('if len(problems) == before:', 'if True:')],
]
MUTANTS += [(f"tokens file entry check removed: {edits[0][0].strip()[:50]}", "access/tokens.py",
             edits, "tokens_file or entry") for edits in ENTRY_CHECKS]


def drop_bytecode(module: Path) -> None:
    for cached in (module.parent / "__pycache__").glob(f"{module.stem}.*.pyc"):
        cached.unlink()


def check(name: str, module: Path, edits: list[tuple[str, str]], selection: str) -> bool:
    original = module.read_text()
    text = original
    for old, new in edits:
        assert text.count(old) == 1, f"{name}: {old!r} is not in {module.name} once"
        text = text.replace(old, new)
    try:
        module.write_text(text)
        drop_bytecode(module)
        run = subprocess.run(
            [sys.executable, "-B", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             "tests/test_mutation_pins.py", "-k", selection],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        module.write_text(original)
        drop_bytecode(module)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr
    killed = run.returncode == 1
    print(f"{'KILLED  ' if killed else 'SURVIVED'} {name} ({summary})", flush=True)
    return killed


def main() -> int:
    chosen = [m for m in MUTANTS if not sys.argv[1:] or any(a in m[0] for a in sys.argv[1:])]
    results = [check(name, SERVER / module, edits, selection)
               for name, module, edits, selection in chosen]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

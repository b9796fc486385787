"""Bearer tokens: the tokens file (names, SHA-256 digests and scopes; never a token itself),
checking a presented token in constant time, and minting a new one.

```yaml
tokens:
  - name: runner
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    scopes: [resolve, secrets]
```
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from llmconfig_server.support import files

# What each scope opens; the servicer's RPCs map onto these in access.py.
SCOPES: Final = ("resolve", "secrets", "health")
_SCOPE_LIKE: Final = re.compile(r"[a-z][a-z_-]{0,23}")
TOKEN_PREFIX: Final = "llmc_"  # lets secret scanners and people recognise a leaked token
TOKENS_FILE_LIMIT: Final = 1024 * 1024
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIGEST: Final = re.compile(r"[0-9a-fA-F]{64}")


class TokensFileError(Exception):
    """The tokens file cannot be used; the message names the file and the entry, never a
    value (someone may have pasted the token itself where its digest belongs)."""


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    digest: bytes  # SHA-256 of the token
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class TokenTable:
    tokens: tuple[Token, ...]
    source: str  # the file, for the startup report and errors
    # Why no token is accepted (the file lists none, or cannot be used); None when it serves.
    problem: str | None = None
    broken: bool = False  # the file could not be read or checked (not merely empty)
    # Tokens already proven valid, so a runner's every call is not a SHA-256 and a scan.
    # Only valid tokens enter (a caller cannot fill it), and a presented token that is not
    # here takes the constant-time path.
    _proven: dict[str, Token] = field(default_factory=dict, compare=False, repr=False)

    def authenticate(self, presented: str) -> Token | None:
        """The entry whose digest matches, comparing every entry in constant time so the
        answer's timing says nothing about which digest came close."""
        if (known := self._proven.get(presented)) is not None:
            return known
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = None
        for token in self.tokens:
            if hmac.compare_digest(token.digest, digest):
                found = token
        if found is not None:
            self._proven[presented] = found
        return found


def closed(path: str | Path, problem: str) -> TokenTable:
    """The table of a tokens file that cannot be used: it accepts no token (fail closed)."""
    return TokenTable((), str(path), problem, broken=True)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def entry_yaml(name: str, token: str, scopes: Iterable[str]) -> str:
    return (f"  - name: {name}\n    sha256: {digest_of(token)}\n"
            f"    scopes: [{', '.join(scopes)}]\n")


def parse_scopes(text: str) -> tuple[str, ...]:
    """`resolve,secrets` → ('resolve', 'secrets'); raise ValueError naming what is unknown."""
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"unknown scope {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"use a comma-separated list of: {', '.join(SCOPES)}")
    return scopes


def _scope_problem(scopes: object) -> str:
    """What is wrong with `scopes`, naming an unknown scope (and the close one) when it looks
    like a scope name; anything else is not echoed (it could be a pasted token)."""
    if not isinstance(scopes, list) or not scopes:
        return "must be a non-empty list"
    unknown = [s for s in scopes if not (isinstance(s, str) and s in SCOPES)]
    named = [s for s in unknown if isinstance(s, str) and _SCOPE_LIKE.fullmatch(s)]
    if len(named) < len(unknown):
        return "an entry is not a scope name"
    close = {s: difflib.get_close_matches(s, SCOPES, n=1) for s in named}
    return "unknown scope " + ", ".join(
        repr(s) + (f" (did you mean {close[s][0]!r}?)" if close[s] else "") for s in named)


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def load(path: str | Path) -> TokenTable:
    """Read and check the tokens file; raise TokensFileError naming every problem."""
    shown = str(path)
    try:
        text = files.read_text(path, limit=TOKENS_FILE_LIMIT)
    except files.FileProblem as exc:
        raise TokensFileError(f"tokens file: {exc}") from None
    from llmconfig_server.support.safe_yaml import YAMLProblem, load

    try:
        document = load(text)  # bounded, and its errors never quote the file
    except YAMLProblem as exc:
        raise TokensFileError(f"tokens file {shown}{exc.where}: {exc}") from None
    entries = _entries(document, shown)
    problem = None if entries else (
        f"tokens file {shown} lists no tokens, so every token is refused; add an entry made "
        f"with `llmconfig-server token new --name NAME --scopes {','.join(SCOPES)}`")
    return TokenTable(entries, shown, problem)


def _entries(document: Any, shown: str) -> tuple[Token, ...]:
    if not isinstance(document, dict) or set(document) != {"tokens"}:
        raise TokensFileError(f"tokens file {shown}: expected one key, `tokens:`, holding a list "
                              "of entries with name, sha256 and scopes")
    raw = document["tokens"]
    if raw is None or raw == []:
        return ()  # every token revoked: a valid table that accepts none
    if not isinstance(raw, list):
        raise TokensFileError(f"tokens file {shown}: `tokens` must be a list; create an entry "
                              "with `llmconfig-server token new --name NAME --scopes "
                              f"{','.join(SCOPES)}`")
    problems: list[str] = []
    tokens: list[Token] = []
    for index, entry in enumerate(raw):
        where = f"tokens[{index}]"
        before = len(problems)
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with name, sha256 and scopes")
            continue
        if extra := sorted(set(map(str, entry)) - {"name", "sha256", "scopes"}):
            close = [c for key in extra
                     for c in difflib.get_close_matches(key, ("name", "sha256", "scopes"), n=1)]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            problems.append(f"{where}: unknown key {', '.join(extra)}{hint}; allowed: name, "
                            "sha256, scopes")
        name, digest, scopes = entry.get("name"), entry.get("sha256"), entry.get("scopes")
        if not (isinstance(name, str) and valid_name(name)):
            problems.append(f"{where}.name: must be 1–64 letters, digits, '.', '_' or '-'")
        if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
            problems.append(f"{where}.sha256: must be the 64 hex characters of the token's "
                            "SHA-256 (never the token itself); `llmconfig-server token new` "
                            "prints it")
        if not (isinstance(scopes, list) and scopes
                and all(isinstance(s, str) and s in SCOPES for s in scopes)):
            problems.append(f"{where}.scopes: {_scope_problem(scopes)}; valid scopes: "
                            f"{', '.join(SCOPES)}")
        if len(problems) == before:
            assert isinstance(name, str) and isinstance(digest, str) and isinstance(scopes, list)
            tokens.append(Token(name, bytes.fromhex(digest), frozenset(scopes)))
    names = [t.name for t in tokens]
    problems += [f"name {n!r} is used by more than one entry" for n in sorted(set(names))
                 if names.count(n) > 1]
    digests = [t.digest for t in tokens]
    if len(set(digests)) != len(digests):
        problems.append("two entries have the same sha256; each caller needs its own token")
    if problems:
        raise TokensFileError(f"tokens file {shown}: " + "; ".join(problems))
    return tuple(tokens)

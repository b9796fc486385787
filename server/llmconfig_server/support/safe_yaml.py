"""YAML for operator files, without YAML's traps.

- Bounded: at most MAX_NODES values, counted on the parser's event stream before anything is
  built; aliases are expanded only after the node graph has been counted, so a 400-byte
  "billion laughs" file is refused in milliseconds instead of taking minutes and gigabytes;
  nesting is bounded by libyaml (1000 levels) or refused when Python's stack runs out.
- Numbers are plain decimals: YAML 1.1 reads `1_000` as 1000, `0700` as 448 and `1:30` as 90;
  here such scalars stay strings, so the schema refuses them instead of silently using them.
- Strict: a key given twice in one mapping is an error (YAML would keep the last silently).
- Quiet: an error says where (line and column) and what, never the text around it, which may
  be the key the operator mistyped (`api_key:sk-…`).
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A config file has a few dozen values; this leaves room and stops an expansion early.
MAX_NODES: Final = 10_000
_INT_TAG: Final = "tag:yaml.org,2002:int"
_FLOAT_TAG: Final = "tag:yaml.org,2002:float"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
# Key names fit to repeat in an error (not a pasted secret, not a megabyte).
_PLAIN_NAME: Final = re.compile(r"[a-z_]{1,32}")
# A quoted excerpt longer than this in a YAML error (a tag, an anchor name) is not shown.
_QUOTED: Final = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_SHORT: Final = 6

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc]
    """Safe loading (libyaml when present) with plain-decimal numbers only."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
               r"|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


class YAMLProblem(Exception):
    """Why a text is not usable YAML, in words that never quote the text. `where` is
    `:line:column` when known (to follow the file name), else empty."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


# Where each key and value of a document is, by its path of keys (list items by index; a key
# itself under its path + ("<key>",)): (line, column, the scalar's text as written or None).
Marks = dict[tuple[str, ...], tuple[int, int, str | None]]
KEY: Final = "<key>"


def load(text: str) -> Any:
    """The document in `text` (None when empty); raises YAMLProblem."""
    return load_with_marks(text)[0]


def load_with_marks(text: str) -> tuple[Any, Marks]:
    """The document and where each of its keys and values is — so an error can say where
    something is without quoting it — with each scalar's text as written: what a reader with
    typed fields, such as Go's yaml.v3, takes for a string field (`provider: on` is the string
    "on" there, not true)."""
    try:
        _count_values(text)
        document, root = _compose_and_construct(text)
        return document, _marks(root) if root is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or ""
        if mark is not None and _indented_with_a_tab(text, mark.line):
            problem = "tab"  # libyaml only says "found character that cannot start any token"
        raise YAMLProblem(f"invalid YAML: {_explained(problem)}", where) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise YAMLProblem(f"invalid YAML: character #x{exc.character:04x} is not allowed "
                          "in YAML", f":{line}") from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(f"invalid YAML ({type(exc).__name__})") from None
    except RecursionError:  # the pure-Python parser, on deep nesting
        raise YAMLProblem("invalid YAML: nested too deeply") from None
    except UnicodeError:  # a lone surrogate: not text libyaml can take (never from a file)
        raise YAMLProblem("invalid YAML: not valid Unicode text") from None


def _compose_and_construct(text: str) -> tuple[Any, Node | None]:
    """The document and its root node (None for an empty document), its graph checked."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_graph(node)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def _marks(root: Node) -> Marks:
    """Each key's and value's place, by path. _check_graph has bounded the expanded size, so
    this walk (which follows aliases) visits at most MAX_NODES values."""
    found: Marks = {}
    stack: list[tuple[tuple[str, ...], Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        found.setdefault(path, _place(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
                    found.setdefault((*path, str(key.value), KEY), _place(key))
                    stack.append(((*path, str(key.value)), value))
        elif isinstance(node, SequenceNode):
            stack.extend(((*path, str(index)), item) for index, item in enumerate(node.value))
    return found


def _place(node: Node) -> tuple[int, int, str | None]:
    text = node.value if isinstance(node, ScalarNode) else None
    return node.start_mark.line + 1, node.start_mark.column + 1, text


def _indented_with_a_tab(text: str, line: int) -> bool:
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        return False
    return "\t" in lines[line][:len(lines[line]) - len(lines[line].lstrip(" \t"))]


def _explained(problem: str) -> str:
    """PyYAML's problem in the words a person editing the file needs (the two first-hour
    mistakes: a tab, and `key:value` without a space), else quietened."""
    if problem == "tab" or "tab character" in problem or "'\\t'" in problem:
        return "tabs are not allowed for indentation in YAML; use spaces"
    if problem == "could not find expected ':'":
        return f"{problem} (a key needs a space after its colon: `key: value`)"
    return _quiet(problem)


def _quiet(problem: str) -> str:
    """PyYAML quotes what it found (`found character '\\t'`, `the tag '!sk-ant-…'`): keep short
    quotes (a character, a token name), drop the rest, which is the file's own text."""
    def keep_short(match: re.Match[str]) -> str:
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        return match.group(0) if len(inner) <= _SHORT or inner.startswith("<") else "(…)"

    return _QUOTED.sub(keep_short, problem.splitlines()[0] if problem else "a syntax error")


def _count_values(text: str) -> None:
    """Refuse a document of more than MAX_NODES values before building any of them: a streaming
    pass over the parser's events stops at the limit, so a megabyte of `[1,1,1,…]` costs
    milliseconds, not the seconds and hundreds of megabytes of composing it."""
    events = _Loader(text)
    try:
        count = 0
        while (event := events.get_event()) is not None:
            if isinstance(event, (ScalarEvent, AliasEvent, CollectionStartEvent)):
                count += 1
                if count > MAX_NODES:
                    raise YAMLProblem(f"it has more than {MAX_NODES} values; a config file "
                                      "has a few dozen")
    finally:
        events.dispose()


def _check_graph(root: Node) -> None:
    """Refuse what YAML would silently accept: aliases that expand past MAX_NODES values or into
    themselves (an alias inside its own anchor), and a key given twice in one mapping (the last
    would win without a word). Each distinct node is visited once (expanded sizes are shared),
    so this costs the composed size, not the expanded one."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise YAMLProblem(f"its aliases (*name) expand to more than {MAX_NODES} values; "
                                  "write the values out")
        elif key in open_nodes:  # reached again while its own children are being counted
            raise YAMLProblem("an alias (*name) refers to itself", _where(node))
        elif key not in sizes:
            _check_unique_keys(node)
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _check_unique_keys(node: Node) -> None:
    if not isinstance(node, MappingNode):
        return
    seen: set[str] = set()
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
            continue
        if key.value in seen:
            name = key.value if _PLAIN_NAME.fullmatch(key.value) else "a key"
            raise YAMLProblem(f"{name} appears twice in the same mapping; keep one",
                              _where(key))
        seen.add(key.value)


def _where(node: Node) -> str:
    mark = node.start_mark
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def load_located(text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """As `load`, with the line (1-based) where each value starts, keyed by its path in the
    document (`("models", 3, "id")`), so a schema error can say `file:line`."""
    try:
        _count_values(text)
        document, root = _compose_and_construct(text)
        return document, _lines(root) if root is not None else {}
    except YAMLProblem:
        raise
    except Exception:
        return load(text), {}  # the same failure, reported as `load` reports it


def _lines(root: Node) -> dict[tuple[Any, ...], int]:
    lines: dict[tuple[Any, ...], int] = {}
    _record_lines(root, (), lines)
    return lines


def _record_lines(node: Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    stack = [(node, path)]
    while stack:
        current, where = stack.pop()
        if current.start_mark is not None:
            lines.setdefault(where, current.start_mark.line + 1)
        if isinstance(current, SequenceNode):
            stack.extend((child, (*where, index)) for index, child in enumerate(current.value))
        elif isinstance(current, MappingNode):
            for key, value in current.value:
                if isinstance(key, ScalarNode):
                    stack.append((value, (*where, key.value)))

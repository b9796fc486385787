"""`llmconfig-server` / `python -m llmconfig_server`, and `llmconfig-server token new`.

Exit codes: 0 after a graceful stop; 2 when the configuration is invalid or serving as asked
would be unsafe (one message listing every problem); 1 when a listen address cannot be served
on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmconfig_server.flags import FlagError, parse

if TYPE_CHECKING:
    from llmconfig_server.live.state import Inputs, Snapshot

EXIT_INVALID_CONFIG = 2
EXIT_CANNOT_SERVE = 1

log = logging.getLogger("llmconfig_server")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        return token_command(argv[1:])
    try:
        options = parse(argv)
    except FlagError as exc:
        print(flag_refusal(exc), file=sys.stderr)
        return EXIT_INVALID_CONFIG
    from llmconfig_server.observe.corelog import route_native_stderr
    from llmconfig_server.observe.logs import configure

    route_native_stderr()  # gRPC core's own lines, rate-limited, in --log-format
    configure(options.log_level, options.log_format)
    from llmconfig_server.app import ListenError, serve
    from llmconfig_server.live.state import BuildError, Inputs

    inputs = Inputs.of_process(options)
    try:
        snapshot = first_state(inputs)
    except BuildError as exc:
        print(refusal(exc.problems), file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        asyncio.run(serve(inputs, snapshot))
    except ListenError as exc:
        print(f"llmconfig-server: {exc}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    finally:
        from llmconfig_server.observe.corelog import flush

        flush()
    return 0


def token_command(argv: Sequence[str]) -> int:
    from llmconfig_server.access.tokens import (
        SCOPES,
        entry_yaml,
        new_token,
        parse_scopes,
        valid_name,
    )

    parser = argparse.ArgumentParser(
        prog="llmconfig-server token",
        description="Mint a bearer token. The token is printed once, on stdout; the entry for "
                    "the tokens file (its SHA-256, never the token) on stderr.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    new = commands.add_parser("new", help="print a new random token and its tokens-file entry")
    new.add_argument("--name", required=True, help="who will hold it, e.g. runner or daemon")
    new.add_argument("--scopes", required=True,
                     help=f"comma-separated, from: {', '.join(SCOPES)}")
    args = parser.parse_args(argv)
    if not valid_name(args.name):
        parser.error("--name must be 1–64 letters, digits, '.', '_' or '-'")
    try:
        scopes = parse_scopes(args.scopes)
    except ValueError as exc:
        parser.error(f"--scopes: {exc}")
    token = new_token()
    print(token)
    # stdout is usually a file (`> runner.token`): say where the token went, not "above".
    print(f"\nThe token went to stdout, once: it is not shown again. Give it to {args.name} "
          f"(e.g. as the file named by STIGMER_LLMCONFIG_TOKEN_FILE), and add this entry "
          f"under `tokens:` in the tokens file (--tokens-file):\n\n"
          f"{entry_yaml(args.name, token, scopes)}", file=sys.stderr)
    return 0


def first_state(inputs: Inputs) -> Snapshot:
    """The state to start serving, or BuildError: what makes `llmconfig-server` exit 2 (the
    suite calls this in-process for the rules, and runs the command for the exit code)."""
    from llmconfig_server.live.state import BuildError, build

    snapshot = build(inputs)
    tokens = snapshot.access.tokens
    if tokens is not None and tokens.broken and tokens.problem:
        # Running, it would refuse every token (fail closed); starting, the operator is here
        # to fix it. (An empty list is a choice: the server starts and refuses every token.)
        raise BuildError([tokens.problem.removesuffix(
            "; every token is refused until it is fixed")], tokens)
    return snapshot


def flag_refusal(error: FlagError) -> str:
    return f"llmconfig-server: refusing to start: {error}"


def refusal(problems: Sequence[str]) -> str:
    """What `llmconfig-server` prints before exiting 2."""
    from llmconfig_server.support.redact import redact_text

    lines = ["llmconfig-server: refusing to start: the configuration is invalid:"]
    lines += [f"  - {redact_text(problem)}" for problem in problems]
    return "\n".join(lines)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()

"""`llmconfig-server` / `python -m llmconfig_server`.

Exit codes: 0 after a graceful stop; 2 when the configuration of the server's mode is invalid
(one message listing every problem); 1 when the listen address cannot be served on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .app import ListenError, serve
from .domain import ConfigError
from .flags import FlagError, parse
from .resolver import Resolver

EXIT_INVALID_CONFIG = 2
EXIT_CANNOT_SERVE = 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse(argv)
    except FlagError as exc:
        print(f"llmconfig-server: refusing to start: {exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    logging.basicConfig(
        level=options.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        from .sources import load_server_sources

        sources = load_server_sources(options.flags, os.environ, Path.cwd(), Path.home())
        resolver = Resolver(sources)
        base = resolver.base()
        if isinstance(base, ConfigError):
            raise base
    except ConfigError as exc:
        _refuse(exc)
        return EXIT_INVALID_CONFIG
    try:
        asyncio.run(serve(resolver, options.listen, options.shutdown_grace, options.health))
    except ListenError as exc:
        print(f"llmconfig-server: {exc}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    return 0


def _refuse(error: ConfigError) -> None:
    lines = ["llmconfig-server: refusing to start: the configuration is invalid:"]
    lines += [f"  - {v.message}" for v in error.violations]
    print("\n".join(lines), file=sys.stderr)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()

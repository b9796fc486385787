"""The `llmconfig-server` console script. `pip install llmconfig` installs the script too, but
not the server's libraries: say what to install instead of a traceback."""

from __future__ import annotations

import importlib.util
import sys

# What `llmconfig[server]` adds to the client's dependencies (tests/test_packaging.py keeps this
# list equal to what the server imports).
SERVER_LIBRARIES = ("grpc_health", "grpc_reflection", "httpx", "prometheus_client", "pydantic",
                    "watchfiles", "yaml")


def run() -> None:
    missing = [name for name in SERVER_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        print(f"llmconfig-server: the server's libraries are not installed (missing: "
              f"{', '.join(missing)}); install them with: pip install 'llmconfig[server]'",
              file=sys.stderr)
        sys.exit(1)
    from llmconfig_server.__main__ import run as serve

    serve()

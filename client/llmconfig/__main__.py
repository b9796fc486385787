"""`python -m llmconfig` is the `llmconfig` command."""

from ._cli import run

run()

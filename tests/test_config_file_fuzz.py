"""Hunting for the next config-file error that shows a key: thousands of YAML-ish texts built from
the fragments that broke before (a key next to colons, quotes, brackets, tags, anchors, tabs),
through the real loader. Each either loads or is refused with ConfigFileError, quickly, and no
message contains the key or its tail. Seeded, so a failure reproduces.
"""

from __future__ import annotations

import random

import pytest

from llmconfig_server.sources import config_file
from llmconfig_server.sources.config_file import ConfigFileError

KEY = "sk-ant-api03-FUZZfuzzFUZZfuzz-9q8w7e6r5t4y"
TOKEN = "Zq7Wx2VbK3y9FUZZfuzz8Rt5"  # a secret without a known prefix
FRAGMENTS = [
    "llm:", "local:", "cloud:", "mode:", "  ", " ", "\n", "\r\n", "\t", "api_key:", "api_key: ",
    "  api_key:", "token:", "password=", KEY, KEY, KEY, TOKEN, TOKEN,
    '"', "'", "[", "]", "{", "}", ":", ": ",
    ",", "-", "- ", "&a ", "*a", "&k", "*k", "!", "!!str ", "!!binary ", "#", "? ", "|", ">",
    "<<: ", "provider:", "model:", "max_tokens:", "1_000", ".inf", "\\", "\\u0007", "%YAML 1.1",
    "---", "...", "\ufeff", "é", "\x07",
]
EXAMPLES = 3000


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(20261201)
    return ["".join(rng.choices(FRAGMENTS, k=rng.randint(1, 24))) for _ in range(EXAMPLES)]


def test_no_config_file_error_shows_the_key(tmp_path, texts):
    path = tmp_path / "config.yaml"
    refused = 0
    for text in texts:
        path.write_text(text, encoding="utf-8")
        try:
            config_file.load(path, tmp_path, "--config")
        except ConfigFileError as exc:
            refused += 1
            for violation in exc.violations:
                shown = f"{violation.message} {violation.subject}"
                for secret in (KEY, TOKEN):
                    assert secret not in shown and secret[-12:] not in shown, (text, shown)
                assert "\n" not in violation.message, (text, violation.message)
    assert refused > EXAMPLES // 2  # most such texts are broken: the refusals were exercised

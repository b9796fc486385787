"""The revision: a short stable hash; equal configs give equal revisions."""

from __future__ import annotations

from conftest import ANTHROPIC_KEY


def test_equal_configs_have_equal_revisions(serve):
    first = serve(env={"STIGMER_LLM_MODEL": "llama3:8b"}).resolve()
    second = serve(args=["--llm-model", "llama3:8b"]).resolve()
    assert first.revision == second.revision
    assert len(first.revision) == 12


def test_friendly_and_canonical_names_give_the_same_revision(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert client.resolve(model="claude-haiku-4.5").revision == \
        client.resolve(model="claude-haiku-4-5-20251001").revision


def test_a_different_value_changes_the_revision(serve):
    client = serve()
    assert client.resolve().revision != client.resolve(temperature=0.5).revision


def test_a_different_key_changes_the_revision_without_revealing_it(serve):
    other = "sk-ant-api03-ANOTHERKEYanotherkeyANOTHER-1234"
    a = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve()
    b = serve(env={"ANTHROPIC_API_KEY": other}).resolve()
    assert a.revision != b.revision

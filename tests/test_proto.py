"""The domain and the wire agree."""

from __future__ import annotations

from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig_server.resolve.domain import Source


def test_domain_sources_match_the_proto_enum():
    for source in Source:
        assert pb.Source.Value(f"SOURCE_{source.name}") == source.value
    assert len(pb.Source.keys()) == len(Source) + 1  # plus SOURCE_UNSPECIFIED

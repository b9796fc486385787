"""The cascade without gRPC: the vocabulary, the catalog, the grammar, the rules."""

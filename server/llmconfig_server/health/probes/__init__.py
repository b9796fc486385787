"""Provider probes: one small module per kind of provider, each `async def probe(http, target)`,
keyed by the catalog's `kind` (a provider declared as data is `openai-compatible`)."""

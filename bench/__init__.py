"""Benchmarks for llmconfig (`make bench`): every figure is taken against a baseline measured in
the same run, because these machines are noisy."""

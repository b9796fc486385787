"""Is the resolved provider usable: the checker, the probes, the providers' model lists."""

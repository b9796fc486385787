"""What every layer uses: bounded file reads, bounded caches, redaction, safe YAML."""

"""llmconfig_server: the gRPC service that owns Stigmer's LLM configuration."""

__version__ = "0.1.0"

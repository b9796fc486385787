"""Generated code for llmconfig.v1 (regenerate with `make proto`; never edit by hand)."""

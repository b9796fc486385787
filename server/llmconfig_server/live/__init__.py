"""The current snapshot of everything derived from the inputs, and when to rebuild it."""

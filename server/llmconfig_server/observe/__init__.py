"""Logs, gRPC core's log lines, metrics and the startup report."""

"""Where values come from: the request, flags, environment and config files."""

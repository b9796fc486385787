"""Who may call what: tokens, listeners, peers, the guard around every handler."""

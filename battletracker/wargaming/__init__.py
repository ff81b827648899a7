"""battletracker.wargaming."""

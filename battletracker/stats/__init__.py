"""battletracker.stats."""

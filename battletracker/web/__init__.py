"""battletracker.web."""

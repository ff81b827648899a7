"""battletracker.nodes."""

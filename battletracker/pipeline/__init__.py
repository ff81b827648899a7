"""battletracker.pipeline."""

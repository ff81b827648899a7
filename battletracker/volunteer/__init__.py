"""battletracker.volunteer: what runs on a volunteer's machine (no database, web or ES code)."""

__all__: list[str] = []

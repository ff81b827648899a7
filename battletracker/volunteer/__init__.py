"""The volunteer node: what runs on a stranger's machine (no database, web or search code)."""

__all__: list[str] = []

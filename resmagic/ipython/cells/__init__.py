"""Running a cell: its header, its layers (options to scopes), the hooks around it."""

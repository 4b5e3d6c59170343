"""Showing reports: where they go, as text, as the live panel, the session table, watch lines."""

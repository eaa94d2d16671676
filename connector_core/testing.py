"""pytest fixtures for plugin authors (filled in with the engine)."""

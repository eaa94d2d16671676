"""Fails to import: it needs a dependency that is not installed."""

import connector_broken_missing_dependency  # noqa: F401

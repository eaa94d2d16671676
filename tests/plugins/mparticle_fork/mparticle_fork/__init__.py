"""Declares connector ``mparticle`` with its own, different manifest."""

from importlib import resources

CONNECTOR_MANIFEST = resources.files(__name__) / "mparticle.json"

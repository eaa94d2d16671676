"""Auth schemes and connectors from a third-party distribution: nothing in connector_core names them."""

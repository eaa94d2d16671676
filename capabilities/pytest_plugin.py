"""pytest fixtures for the mParticle sandbox."""

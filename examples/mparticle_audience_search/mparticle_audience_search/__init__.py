"""``mparticle.findAudiences``: a capability attached to the mParticle connector.

The capability manifest names ``"connector": "mparticle"``; the package ships no copy of
mParticle's connector manifest, so the capability runs with the connector's own config,
endpoints and OAuth token, whichever version of it is installed.
"""

"""Loopback benchmark of the gateway against a direct-to-upstream baseline (`python -m bench`)."""

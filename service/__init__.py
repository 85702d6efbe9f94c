"""jwks-service: JWT keys per realm, published as a JWKS."""

__version__ = "0.1.0"

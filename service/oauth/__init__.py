"""The OAuth 2.0 authorization server of each realm.

``errors`` carries the RFC 6749 §5.2 / RFC 7591 §3.2.2 error codes; ``registration``
validates client metadata (RFC 7591); ``clients`` stores and finds clients;
``client_auth`` authenticates a token request (client_secret_basic/post,
private_key_jwt per RFC 7523); ``grants`` issues client_credentials tokens;
``discovery`` builds RFC 8414 metadata.
"""

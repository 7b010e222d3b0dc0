"""``kube-oidc-proxy credential``: a kubectl exec credential plugin (client.authentication.k8s.io/v1) that
hands kubectl an id_token from the user's OIDC provider.

The order of sources (``plan``): a cached id_token still valid past a margin, then the cached refresh
token, then a browser login (authorization code + PKCE through a loopback redirect, ``login`` and
``loopback``) when kubectl says the session is interactive. Tokens are cached per user (``cache``), the
ExecCredential is written by ``execinfo``, expiry maths live in ``expiry``, and ``cli`` ties them together.
Messages go to stderr (kubectl shows them); stdout carries the ExecCredential and nothing else.
"""

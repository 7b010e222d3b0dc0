"""kube-oidc-proxy: an OIDC authenticating, impersonating reverse proxy for kube-apiserver."""

__version__ = "0.1.0"

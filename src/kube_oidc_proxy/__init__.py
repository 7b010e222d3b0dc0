"""kube-oidc-proxy: an OIDC authenticating, impersonating reverse proxy for kube-apiserver."""

# A development version until a release is tagged (v0.1.0 publishes the image tag 0.1.0): CHANGELOG.md.
__version__ = "0.1.0.dev0"

"""The two ways the plugin ends without a credential: exit 1 (``CredentialError``: no token could be had)
and exit 2 (``UsageError``: the command line or KUBERNETES_EXEC_INFO is wrong). Messages are shown to the
user as they are, on stderr, so they never hold a token, a code or a secret."""

from __future__ import annotations


class CredentialError(Exception):
    """No credential: the message says why and, where it can, what to do."""


class UsageError(Exception):
    """Invalid arguments or environment."""

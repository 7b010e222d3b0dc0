"""The proxy's own identity towards kube-apiserver: where it is, what to trust, which credential to send."""

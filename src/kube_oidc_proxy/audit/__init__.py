"""Kubernetes audit events (audit.k8s.io/v1): policy, events, and the log and webhook backends."""

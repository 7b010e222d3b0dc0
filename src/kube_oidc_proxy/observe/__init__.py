"""What the proxy tells operators: SIEM access lines (metrics and audit come later)."""

"""The client's methods, one module per group of the daemon's endpoints (docs/api.md)."""

"""hyperd's HTTP API: a Docker Engine API subset on a unix socket (docs/api.md)."""

"""Containers: typed specs, records and state, the lifecycle service, the exit monitor,
restart policy, execs and logs. A container runs inside a sandbox (hyperd/sandbox)."""

"""Containers: the model, their logs, and the lifecycle manager."""

"""The liveness service."""

"""Training scripts for the liveness models (run by hand; their outputs are committed)."""

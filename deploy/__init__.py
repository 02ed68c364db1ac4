"""Deployment tooling: the images compose builds from (`deploy/images.py`)."""

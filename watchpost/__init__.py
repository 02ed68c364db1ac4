"""Watchpost shared package: settings, message contracts, stream names and helpers, storage,
image helpers and model adapters used by every service."""

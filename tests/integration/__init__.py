"""Integration tests on the real services started by deploy/services."""

"""MicroLearn Python SDK (placeholder until the client lands)."""

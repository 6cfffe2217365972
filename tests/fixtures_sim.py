"""Fixtures that start the simulated OpenAI-compatible server."""

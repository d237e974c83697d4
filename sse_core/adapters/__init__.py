"""Adapters (floor 4): the I/O edges that carry out what the sans-IO sessions decide."""

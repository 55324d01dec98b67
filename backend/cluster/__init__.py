"""Edges for running several backend processes: the `Streams` registry on Redis."""

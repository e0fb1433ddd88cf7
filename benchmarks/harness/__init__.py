"""Pieces of the overhead benchmark: sink, processes, load generator, contenders."""

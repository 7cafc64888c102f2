"""Thin Ray wiring over the lfdm library: training, flow precompute, generation, evaluation, sweeps."""

"""Runs over many videos, without Ray: a generation run (plan, outputs, gathered table) and an evaluation
run (real-clip choice, feature table, cached real features, metrics). The Ray jobs only distribute them."""

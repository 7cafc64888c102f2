"""Runs over many videos, without Ray: a generation run (plan, outputs, gathered table) and an evaluation
run (real-clip choice, feature table, cached real features, metrics). The Ray jobs only distribute them."""


class RunError(ValueError):
    """A run that cannot go on as asked: settings that contradict what its folder already holds, nothing to do."""

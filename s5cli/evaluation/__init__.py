"""Benchmark evaluation (`s5 evaluate`): the paper's eval modes, per-dataset metrics, server submissions."""

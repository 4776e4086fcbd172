"""Scoring a model head on a dataset split: eval modes, metrics, plans; used by validation and `s5 evaluate`."""

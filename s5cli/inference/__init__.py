"""Inference on georeferenced scenes of any size: windows, batching, stitching, outputs."""

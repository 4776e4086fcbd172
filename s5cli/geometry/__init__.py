"""Oriented boxes and polygons in pixel coordinates: conversions and exact IoU (torch, no model)."""

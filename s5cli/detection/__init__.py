"""Oriented object detection in plain torch: rotated boxes, Oriented R-CNN heads, patches."""

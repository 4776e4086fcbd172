"""Metrics accumulated over whole splits: segmentation (confusion matrix) and rotated-box mAP."""

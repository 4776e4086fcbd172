"""Datasets in their real on-disk layouts, your own GIS data, augmentations and batch mixing."""

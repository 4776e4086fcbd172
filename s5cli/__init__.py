"""s5cli: the S5 method (scalable semi-supervised segmentation) as a GIS-native command line."""

__version__ = "0.1.0"

"""Corpus curation (RS4P-style): tiling, filtering, de-duplication, pseudo-labels, manifest."""

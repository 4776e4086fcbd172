"""`s5 demo`: a small georeferenced synthetic world and the whole pipeline run on it."""

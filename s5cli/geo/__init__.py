"""GIS I/O with numpy, rasterio and geopandas: rasters, window grids, vectors, safe outputs."""

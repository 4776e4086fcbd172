"""Outputs that open styled in QGIS: class names and colours beside the rasters and inside the vectors.

- A class raster gets `<name>.qml` (QGIS loads a layer's `.qml` namesake as its default style): a
  paletted renderer listing only the head's classes, each with its colour and name. GeoTIFF colour
  tables always hold 256 entries, so without it QGIS lists 0..255. The raster also gets
  `<name>.tif.aux.xml`, GDAL's PAM sidecar, with the class names as category names and a raster
  attribute table (value, class, colour), which GDAL tools and other GIS read.
- A GeoPackage layer gets a row in the `layer_styles` table that QGIS reads (and writes) for
  GeoPackages: a categorised renderer on `class_name`, the same palette and names, marked as the
  default; single-layer vector files (GeoJSON, FlatGeobuf, Shapefile, GeoParquet) get the same style
  as `<name>.qml` beside them.

The QML follows QGIS 3's project format (`<prop k= v=>` symbol properties, which every QGIS 3 reads).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import quoteattr

Colour = Sequence[int]
STYLE_NAME = "s5 classes"
QML_HEAD = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
# GDAL's raster attribute table codes (gdal.h GDALRATFieldType, GDALRATFieldUsage).
_INTEGER, _STRING = 0, 2
_MINMAX, _NAME, _RED, _GREEN, _BLUE, _ALPHA = 5, 2, 6, 7, 8, 9


def _text(value: str) -> str:
    """XML element text (escaped)."""
    return quoteattr(value)[1:-1]


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour[:3])


def style_path(path: str | os.PathLike[str]) -> Path:
    """The `.qml` that QGIS loads as the default style of a file-based layer: same name, suffix .qml."""
    return Path(path).with_suffix(".qml")


def pam_path(path: str | os.PathLike[str]) -> Path:
    """GDAL's PAM sidecar of a raster: `<file>.aux.xml`."""
    p = Path(path)
    return p.with_name(p.name + ".aux.xml")


def raster_qml(classes: Sequence[str], palette: Sequence[Colour]) -> str:
    """A paletted-renderer QML for a class raster (band 1): one entry per class, colour and name."""
    entries = "\n".join(
        f'        <paletteEntry value="{i}" color="{_hex(c)}" alpha="255" label={quoteattr(name)}/>'
        for i, (name, c) in enumerate(zip(classes, palette))
    )
    return (
        QML_HEAD
        + '<qgis version="3.22.0" styleCategories="Symbology">\n'
        + "  <pipe>\n"
        + '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
        + "      <rasterTransparency/>\n"
        + "      <colorPalette>\n"
        + entries
        + "\n      </colorPalette>\n"
        + "    </rasterrenderer>\n"
        + '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
        + '    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" invertColors="0"/>\n'
        + '    <rasterresampler maxOversampling="2"/>\n'
        + "  </pipe>\n"
        + "  <blendMode>0</blendMode>\n"
        + "</qgis>\n"
    )


def _symbol(index: int, colour: Colour, filled: bool) -> str:
    """A fill symbol: the class colour (or no fill, outlined in it, for detection boxes)."""
    rgb = ",".join(str(int(v)) for v in colour[:3])
    darker = ",".join(str(int(v * 0.6)) for v in colour[:3])
    props = {
        "color": f"{rgb},255",
        "style": "solid" if filled else "no",
        "outline_color": f"{darker},255" if filled else f"{rgb},255",
        "outline_style": "solid",
        "outline_width": "0.2" if filled else "0.5",
        "outline_width_unit": "MM",
        "joinstyle": "miter",
    }
    lines = "\n".join(f'          <prop k="{k}" v="{v}"/>' for k, v in props.items())
    return (
        f'      <symbol type="fill" name="{index}" alpha="1" clip_to_extent="1" force_rhr="0">\n'
        '        <layer class="SimpleFill" enabled="1" locked="0" pass="0">\n'
        f"{lines}\n"
        "        </layer>\n"
        "      </symbol>"
    )


def vector_qml(
    classes: Sequence[str], palette: Sequence[Colour], field: str = "class_name", filled: bool = True
) -> str:
    """A categorised-renderer QML colouring polygons by `field` (class names) with the palette."""
    categories = "\n".join(
        f'      <category symbol="{i}" value={quoteattr(name)} label={quoteattr(name)} render="true"/>'
        for i, name in enumerate(classes)
    )
    symbols = "\n".join(_symbol(i, c, filled) for i, c in enumerate(palette[: len(classes)]))
    return (
        QML_HEAD
        + '<qgis version="3.22.0" styleCategories="Symbology">\n'
        + f'  <renderer-v2 type="categorizedSymbol" attr={quoteattr(field)} symbollevels="0" '
        + 'enableorderby="0" forceraster="0">\n'
        + "    <categories>\n"
        + categories
        + "\n    </categories>\n"
        + "    <symbols>\n"
        + symbols
        + "\n    </symbols>\n"
        + "  </renderer-v2>\n"
        + "  <blendMode>0</blendMode>\n"
        + "  <featureBlendMode>0</featureBlendMode>\n"
        + "</qgis>\n"
    )


def raster_pam(classes: Sequence[str], palette: Sequence[Colour]) -> str:
    """GDAL PAM XML for band 1 of a class raster: category names and a thematic attribute table."""
    names = "\n".join(f"      <Category>{_text(n)}</Category>" for n in classes)
    fields = [("Value", _INTEGER, _MINMAX), ("Class", _STRING, _NAME), ("Red", _INTEGER, _RED),
              ("Green", _INTEGER, _GREEN), ("Blue", _INTEGER, _BLUE), ("Alpha", _INTEGER, _ALPHA)]  # fmt: skip
    defs = "\n".join(
        f'      <FieldDefn index="{i}"><Name>{n}</Name><Type>{t}</Type><Usage>{u}</Usage></FieldDefn>'
        for i, (n, t, u) in enumerate(fields)
    )
    rows = "\n".join(
        f'      <Row index="{i}"><F>{i}</F><F>{_text(name)}</F>'
        + "".join(f"<F>{int(v)}</F>" for v in (*c[:3], 255))
        + "</Row>"
        for i, (name, c) in enumerate(zip(classes, palette))
    )
    return (
        "<PAMDataset>\n"
        '  <PAMRasterBand band="1">\n'
        "    <CategoryNames>\n"
        f"{names}\n"
        "    </CategoryNames>\n"
        '    <GDALRasterAttributeTable tableType="thematic">\n'
        f"{defs}\n{rows}\n"
        "    </GDALRasterAttributeTable>\n"
        "  </PAMRasterBand>\n"
        "</PAMDataset>\n"
    )


def write_layer_styles(
    gpkg: str | os.PathLike[str],
    layers: Sequence[str],
    classes: Sequence[str],
    palette: Sequence[Colour],
    filled: bool = True,
) -> None:
    """Store the class style of each layer in the GeoPackage's `layer_styles` table, as QGIS's default.

    The table has the columns QGIS creates (its OGR provider's saveStyle) and QGIS picks the row whose
    f_table_schema is '', f_table_name the layer and f_geometry_column its geometry column, default first.
    """
    import pandas as pd
    import pyogrio

    qml = vector_qml(classes, palette, filled=filled)
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    rows = [
        {
            "f_table_catalog": "",
            "f_table_schema": "",
            "f_table_name": layer,
            "f_geometry_column": pyogrio.read_info(gpkg, layer=layer)["geometry_name"] or "geom",
            "styleName": STYLE_NAME,
            "styleQML": qml,
            "styleSLD": "",
            "useAsDefault": True,
            "description": "s5 predict: class colours and names of the model's head",
            "owner": "",
            "ui": "",
            "update_time": now,
        }
        for layer in layers
    ]
    if not rows:
        return
    exists = "layer_styles" in {str(name) for name, _ in pyogrio.list_layers(gpkg)}
    pyogrio.write_dataframe(
        pd.DataFrame(rows),
        gpkg,
        layer="layer_styles",
        driver="GPKG",
        append=exists,
        layer_options=None if exists else {"FID": "id"},
    )

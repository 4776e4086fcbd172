"""Column checks of the Parquet tables read as data (corpus manifests): a column of another type is one error."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from s5cli.errors import InputError

# Arrow type tests of the column kinds a manifest reader relies on.
_KINDS: dict[str, tuple[Callable[[Any], bool], ...]] = {
    "text": (pa.types.is_string, pa.types.is_large_string),
    "bool": (pa.types.is_boolean,),
    "float": (pa.types.is_floating,),
    "binary": (pa.types.is_binary, pa.types.is_large_binary),
}


def check_columns(schema: pa.Schema, source: str | os.PathLike[str], kinds: dict[str, str]) -> None:
    """Each named column exists with its kind ('text', 'bool', 'float', 'binary'); all-null columns pass."""
    for name, kind in kinds.items():
        index = schema.get_field_index(name)
        if index < 0:
            raise InputError(f"not a corpus manifest: no column '{name}'", source)
        dtype = schema.field(index).type
        if not pa.types.is_null(dtype) and not any(test(dtype) for test in _KINDS[kind]):
            raise InputError(f"column '{name}' holds {dtype} values, not {kind}", source)

"""Fake DOTA-v2.0 in the layout of the official download; the generator is ../_dota.py.

Regenerate: python "s5cli_tests/data/dota-v2.0/data.py"
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _dota import create_dota
from _fakes import regenerate

VERSION = "2.0"


def create(root: Path) -> None:
    """Write the fake dataset under root."""
    create_dota(root, VERSION)


if __name__ == "__main__":
    regenerate(Path(__file__).resolve().parent, create)

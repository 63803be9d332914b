"""Shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so this folder is on
``sys.path``): how a result is reported."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


def emit(result: dict, json_path: Optional[str]) -> str:
    """Print ``result`` as indented JSON on stdout and, with ``json_path``, write it there
    (folders made as needed). Returns the text."""
    text = json.dumps(result, indent=1)
    print(text)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text)
    return text

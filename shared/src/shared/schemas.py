"""``python -m shared.schemas DIR``: write one JSON Schema per event type into DIR."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.events import json_schemas


def rendered() -> dict[str, str]:
    """File name → file content, exactly as exported."""
    return {
        f"{name}.v1.schema.json": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for name, schema in json_schemas().items()
    }


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (target / name).write_text(text)


if __name__ == "__main__":
    main()

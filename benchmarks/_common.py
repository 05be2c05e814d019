"""Shared by the benchmark scripts."""

import json
import os


def write_results(path: str, results: dict) -> None:
    """Writes the figures as JSON to `path` (creating its folder) and prints them."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(json.dumps(results, indent=2, default=float))

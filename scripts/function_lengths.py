"""List the functions under a directory longer than a limit (default: src/adamezo, 60 lines).

Usage: python scripts/function_lengths.py [DIRECTORY] [--max N]; exits 1 if any is longer.
A function's length runs from its ``def`` (decorators excluded) to its last line, nested
functions included.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def long_functions(root: Path, limit: int) -> list[tuple[int, str]]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append((length, f"{path}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default="src/adamezo")
    parser.add_argument("--max", type=int, default=60)
    args = parser.parse_args()
    found = long_functions(Path(args.directory), args.max)
    for length, where in found:
        print(f"{length:4d}  {where}")
    print(f"{len(found)} function(s) longer than {args.max} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

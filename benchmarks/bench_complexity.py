"""Cyclomatic complexity of every function in ``helpers/``, measured with radon.

    python benchmarks/bench_complexity.py [--limit 15] [--folder helpers]

Lists the functions (methods and nested functions included, each on its own) above
``--limit``, most complex first, and ends with one PASS/FAIL line. Target: none above 15,
the point past which a function usually holds more than one step (issue 18). A measure
to look at, not a style rule: CI does not run it. Needs radon (``pip install radon``),
which the tests do not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark module
from checks import report  # noqa: E402

TARGET = 15


class Measured(NamedTuple):
    """One function's cyclomatic complexity, and where it is."""

    path: str
    line: int
    name: str
    complexity: int


def _flatten(blocks, prefix: str = ""):
    """radon's blocks as (qualified name, block), one per function: methods and closures on their own.

    radon counts a nested function apart from the one it is in, so each is listed apart.
    """
    for block in blocks:
        name = f"{prefix}{block.name}"
        if hasattr(block, "methods"):  # a class: its own figure is the sum of its methods'
            yield from _flatten(block.methods, f"{name}.")
            continue
        yield name, block
        yield from _flatten(block.closures, f"{name}.")


def measure(folder: Path) -> list[Measured]:
    """Every function under ``folder`` (``*.py``), most complex first."""
    from radon.complexity import cc_visit

    rows = []
    for path in sorted(folder.rglob("*.py")):
        shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        for name, block in _flatten(cc_visit(path.read_text(encoding="utf-8"))):
            rows.append(Measured(shown, block.lineno, name, block.complexity))
    return sorted(rows, key=lambda r: (-r.complexity, r.path, r.line))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=TARGET, help=f"most complexity allowed (default {TARGET})")
    parser.add_argument("--folder", type=Path, default=ROOT / "helpers", help="folder to measure (default helpers/)")
    args = parser.parse_args()
    try:
        import radon  # noqa: F401
    except ImportError:
        print("bench_complexity needs radon: pip install radon", file=sys.stderr)
        return 2
    if not args.folder.is_dir():
        print(f"{args.folder} is not a folder: give --folder the package to measure", file=sys.stderr)
        return 2
    rows = measure(args.folder.resolve())
    over = [r for r in rows if r.complexity > args.limit]
    for r in over:
        print(f"{r.complexity:4d}  {r.path}:{r.line}  {r.name}")
    mean = sum(r.complexity for r in rows) / len(rows) if rows else 0.0
    print(f"{len(rows)} functions, mean complexity {mean:.1f}, {len(over)} above {args.limit}")
    return report({f"no function above complexity {args.limit} ({len(over)} are)": not over})


if __name__ == "__main__":
    sys.exit(main())

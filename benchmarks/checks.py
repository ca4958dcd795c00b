"""The PASS/FAIL lines a benchmark ends with, one per target."""

from __future__ import annotations


def report(checks: dict[str, bool]) -> int:
    """Print ``PASS`` or ``FAIL`` and each check's text (the figure and its target); 0 if all pass, else 1."""
    for text, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(checks.values()) else 1

"""Makes the repository root importable, so tests and notebooks use ``helpers`` as checked out."""

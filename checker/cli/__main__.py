"""`python -m checker.cli`: the same command line as the `checker` entry point."""

from checker.cli import main

__all__: list[str] = []

main()

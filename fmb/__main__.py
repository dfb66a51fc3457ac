"""`python -m fmb` is the `fmb` command."""

from fmb.cli import main

main()

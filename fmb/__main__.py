"""`python -m fmb` is the `fmb` command."""

from fmb.cli import main

if __name__ == "__main__":  # not when a collector process (fmb collect --processes) imports it
    main()

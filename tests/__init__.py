"""fmb test suite."""

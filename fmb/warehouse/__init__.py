"""The dbt warehouse: running `dbt build` from Python, and the DuckDB plugin it uses."""

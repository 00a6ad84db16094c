"""Benchmarks of the MSCA op: every registered backend against two peers.

Run from the repository root::

    pytest benchmarks/ --benchmark-only      # times, checks, prints the report table
    python -m benchmarks.report [path.json]  # re-prints the table from saved results
"""

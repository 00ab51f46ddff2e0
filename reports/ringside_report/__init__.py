"""ringside reports: results JSON -> charts + HTML (report), and run A vs run B (compare).

Plain functions over plain data (STYLE.md 13): load.py reads and validates
results files, tables.py turns rows into per-benchmark statistics, charts.py
draws one figure per function, claims.py judges the owned-buffer claims,
html.py writes the page, compare.py does the A/B comparison, cli.py holds the
two entry points (scripts/report, scripts/compare)."""

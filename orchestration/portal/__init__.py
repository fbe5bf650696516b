"""The marketing portal: a small server-rendered web app (FastAPI + Jinja2) on the published
campaign lists, their results and the pipeline's status (docs/portal.md).

It reads the export folder, the DuckDB warehouse (read-only, per request) and the Dagster
run history; it writes only its own SQLite file (users, sessions, audit log, sent marks).
`crm serve` starts it; `crm users add|disable|list` manages its accounts.
"""

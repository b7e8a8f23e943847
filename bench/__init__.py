"""`python -m bench` (`make bench`): the dashboard's figures, measured in one run.

Against the SalesIQ simulator and `manage.py serve` (the embedded default) on a throw-away
SQLite file with throw-away secrets: event to screen (with the floor of a bare websockets
broadcast), ingest, render, memory per idle websocket, and the API economy of a Free plan.
What each figure means and how it is measured: docs/benchmarks.md. Benchmarks are not tests:
nothing here is collected by pytest.
"""

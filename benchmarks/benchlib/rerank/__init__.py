"""``rerank_bench.py``'s own parts: its records and JSON (``records``), its printout (``report``), the
child processes that time each backend (``children``), and the run's plan and derived figures (``plan``)."""

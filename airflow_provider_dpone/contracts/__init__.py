"""Pure contracts: manifest model, artifacts, schemas, strategies, state records, errors.

Nothing here imports Airflow, a database driver, or does I/O.
"""

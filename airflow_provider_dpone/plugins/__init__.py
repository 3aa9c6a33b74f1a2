"""Airflow plugins the provider registers (entry point ``airflow.plugins``)."""

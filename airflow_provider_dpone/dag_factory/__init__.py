"""Manifest files -> DAGs, parse-safe: validation only, no network, secrets or database."""

from .builder import build_dag, build_dags, register_manifest_dags

__all__ = ["build_dag", "build_dags", "register_manifest_dags"]

"""Deferrable triggers, one module per connector (land with their connectors)."""

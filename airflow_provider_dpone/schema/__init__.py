"""The shared schema-evolution planner (pure). Not implemented yet: see docs/status.md."""

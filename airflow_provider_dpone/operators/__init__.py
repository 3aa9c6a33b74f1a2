"""Operators: StagedLoadOperator (generic) and connector-specific ones."""

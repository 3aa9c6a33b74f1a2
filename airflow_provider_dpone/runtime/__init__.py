"""The engine: extract -> stage -> finalize -> commit state -> report, connector-agnostic."""

"""The ``dpone`` command."""

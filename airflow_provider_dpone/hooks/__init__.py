"""One module per connector; each hook owns its connection and implements source/sink protocols."""

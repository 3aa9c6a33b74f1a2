"""The demo pipeline and the PostgreSQL resolution shared by the demo, tests and benchmarks."""

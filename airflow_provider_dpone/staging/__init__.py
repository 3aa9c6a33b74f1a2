"""Staging in files: Arrow conversion, Parquet files with their staging manifest, and the stores
they live in (local disk today; S3, GCS and Azure Blob through the official providers next)."""

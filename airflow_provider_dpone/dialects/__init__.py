"""Per-database SQL: quoting, type mapping, introspection queries, DDL, staging and finalize."""

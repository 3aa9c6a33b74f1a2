"""SaaS API sources, one module per vendor, on the generic REST hook."""

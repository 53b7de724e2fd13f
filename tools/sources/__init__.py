"""Thin clients for each public data source: fetch, then pure parsers over the real shapes."""

"""Rendering (tables, escaped log excerpts) and export (HTML, summary JSON, redaction)."""

"""Presentation: R's number formatting and the printed summaries and tables (text and HTML)."""

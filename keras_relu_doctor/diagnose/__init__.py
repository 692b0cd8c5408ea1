"""Diagnosis rules: pure functions from series to findings."""

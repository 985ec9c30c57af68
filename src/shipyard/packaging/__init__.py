"""Packaging: service bundles (images come later, built from bundles)."""

"""Reads shared by several apps live in their own apps; core has none."""

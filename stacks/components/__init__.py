"""Building blocks the targets compose: plain functions that register standard resources."""

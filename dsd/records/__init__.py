"""The on-disk contract."""

"""The pure core: plain functions on plain values (see README.md beside this file)."""

"""Plumbing: safe files, progress, quiet start-up, hashing and verified downloads."""

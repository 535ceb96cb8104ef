"""Baton web app."""

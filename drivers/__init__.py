"""Southbound protocol drivers."""

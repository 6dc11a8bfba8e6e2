"""Lucida's shipped data: the demo study and the demo models with their cards (package data)."""

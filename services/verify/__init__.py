"""Verify: checks each submitted request (phone, place, duplicates, abuse) and triages it."""

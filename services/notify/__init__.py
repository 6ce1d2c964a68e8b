"""Notify: tells the citizen what happened to their request, once per event and channel."""

"""Intake: accepts help requests over HTTP (JSON API, Open311) and from partners, durably."""

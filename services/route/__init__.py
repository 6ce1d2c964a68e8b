"""Route: picks the department and team for each verified request and dispatches it."""

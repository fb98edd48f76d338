"""Shell and Files: an SSH server inside the session, confined to what was allowed."""

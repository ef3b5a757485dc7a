"""Where pod attempts execute. Every backend runs the same pod runner and reports through its run directory."""

"""Training loops: each drives environments, a buffer, an agent and the logger."""

"""Algorithms. Each module defines a config dataclass and an immutable agent pytree;
``contrl.registry`` maps names to them, ``contrl.agents.base`` says what an agent provides."""

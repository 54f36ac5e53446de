"""How one trial trains: the built-in loop, a user's function, fused trials, shared rules."""

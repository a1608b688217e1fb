"""Pure process models: step functions over explicit state and an explicit random generator."""

"""The seeded replay of the synthetic (-1, 0) experiment."""

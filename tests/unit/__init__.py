"""Unit tests: pure logic and embedded (SQLite or in-memory) stores; no services needed."""

"""Helpers shared by the test modules: real clients, a running chat, server processes."""

"""Rooms end to end, over both transports."""

"""The chat itself: who is here, which rooms, one order of events and their delivery.

Nothing in here knows Flask, sockets or Redis: transports hand it lines, and a
:class:`~webchat.bus.Bus` gives its events their ids and makes them durable.
"""

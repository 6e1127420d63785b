"""Tests of webchat/transports/, mirroring its modules."""

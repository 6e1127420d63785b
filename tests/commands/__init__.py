"""Tests of webchat/commands/, mirroring its modules."""

"""Tests of webchat/history/, mirroring its modules."""

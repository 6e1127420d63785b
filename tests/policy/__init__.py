"""Tests of webchat/policy/, mirroring its modules."""

"""Tests of webchat/core/, mirroring its modules."""

"""Tests of webchat/bus/, mirroring its modules."""

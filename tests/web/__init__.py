"""Tests of webchat/web/ and the page it serves."""

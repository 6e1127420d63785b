"""Rules that protect everyone from one connection or one address: rates and counts."""

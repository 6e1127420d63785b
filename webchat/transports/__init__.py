"""Transports turn bytes into hub calls and packets back into bytes; nothing else."""

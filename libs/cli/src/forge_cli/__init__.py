"""The forge command line: local stack and platform lifecycle."""

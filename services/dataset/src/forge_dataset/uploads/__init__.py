"""Uploads of files into draft versions: streamed in one request, or resumable in parts."""

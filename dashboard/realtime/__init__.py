"""Pushing to open pages: the publisher, the websocket consumer, the in-process fan-out."""

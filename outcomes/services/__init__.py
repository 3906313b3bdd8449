"""What the app does, as plain functions: no request, no rendering.

Services add and flush; the caller (the request boundary, or a CLI command) commits once, so
an audit row always lands in the same transaction as the change it describes.
"""

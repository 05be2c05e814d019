"""A local server with TF Serving's REST API (for machines without TF Serving), and its request/response logic."""

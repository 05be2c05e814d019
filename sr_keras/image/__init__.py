"""Images: decoding, PNG writing, tiling, size limits."""

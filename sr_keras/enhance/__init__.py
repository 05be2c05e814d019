"""Files in, files out: names, formats and metadata of sr-enhance, locally and on Beam."""

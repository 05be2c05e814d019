"""The model artifact: a TF Serving model base path of versioned SavedModels, its metadata and its card.

`layout` names the layout and does all of its reading and (atomic) writing, `sr_module` is the exported object (its
signatures and in-graph tiling), `writer` exports a generator as a new version, and `reader` rebuilds Keras
generators from a version. Each is imported by name; this package imports none of them.
"""

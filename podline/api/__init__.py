"""Typed resource models, manifest parsing and validation.

Everything a user writes enters podline here and leaves either as a validated model or as a
`ManifestError` naming the document, the field path and the problem. Nothing downstream re-checks input.
"""

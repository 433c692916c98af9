"""Faces: the encrypted gallery, 1:N matcher, recognizer, template crypto and keys, and the
profile functions other rooms call (last visit, erasure, expiry, strangers)."""

"""Faces: the encrypted gallery, 1:N matcher, recognizer, template crypto and keys."""

"""The entrance role: motion gate, face detection, alignment, quality gate, embedding,
face tracks."""

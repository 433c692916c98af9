"""The floor role: person detection, person tracks, image-to-floor geometry."""

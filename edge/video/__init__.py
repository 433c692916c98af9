"""Video input: capture (files, GIFs, streams) and a source that reconnects."""

"""Media previews (DS-3): ranged content, image thumbnails, audio waveforms, video posters, metadata."""

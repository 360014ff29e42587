"""What stages read and write: paths, atomic output sets, readers of earlier outputs, charts, progress."""

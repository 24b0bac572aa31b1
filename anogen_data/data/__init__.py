"""Read real data (MVTec AD and its variants), the built-in demo category, image/mask IO."""

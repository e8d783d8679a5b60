"""Pair mining: WARC records → pages → image references → images → pairs (Apache Beam)."""

"""A synthetic crawl that looks like the real web to the miner, with ground truth."""
from semantica.sample_web.server import serve_sample_web
from semantica.sample_web.writer import write_sample_web

__all__ = ["serve_sample_web", "write_sample_web"]

"""Curation: the semantic filter and its threshold sweep, then publishing (opt-out, safety, the
dataset card). It reads mining's output folders (pairs/, images/), never mining's modules."""

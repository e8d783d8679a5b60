"""CapturesUnderEveryName: revisits and redirects. The URL a page names may hold its bytes under another
URL of the crawl: a revisit names the original capture (by URL, or only by payload digest), a redirect
names its target. Each image record is filed under its own URL and under every URL that leads to it."""
from __future__ import annotations

import dataclasses

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

# chains (a redirect to a redirect to a revisit…) are followed at most this many hops: a loop or a
# long chain costs a bounded walk per URL
MAX_ALIAS_HOPS = 5


def digest_key(kv):
    """An image record → (payload digest, its URL), for revisits that name only the digest."""
    url, rec = kv
    if rec.digest:
        yield rec.digest, url


def split_aliases(kv):
    """A revisit or redirect → (from, to) where its target is named; a revisit that names only a
    payload digest → ('by_digest', (digest, from)). A revisit of its own URL needs nothing: the
    original is joined under the same URL."""
    url, alias = kv
    if alias.to and alias.to != url:
        yield url, alias.to
    elif alias.to is None and alias.digest:
        yield TaggedOutput("by_digest", (alias.digest, url))


def digest_aliases(kv):
    """digest → {'original': URLs of image records with it, 'revisit': URLs of revisits naming it} →
    (revisit URL, the first original's URL)."""
    _, grouped = kv
    originals = sorted(set(grouped["original"]))
    if originals:
        for url in set(grouped["revisit"]):
            if url not in originals:
                yield url, originals[0]


class AliasMap(beam.CombineFn):
    """Every (from, to) of the job → {to: sorted froms}, following chains (a redirect to a
    redirect, a redirect to a revisit) up to MAX_ALIAS_HOPS."""

    def create_accumulator(self):
        return set()

    def add_input(self, acc, pair):
        acc.add(tuple(pair))
        return acc

    def merge_accumulators(self, accs):
        return set().union(*accs)

    def extract_output(self, acc):
        to: dict = {}
        for a, b in acc:
            to.setdefault(a, set()).add(b)
        inverse: dict = {}
        for start in to:
            seen, frontier = set(), {start}
            for _ in range(MAX_ALIAS_HOPS):
                frontier = {b for a in frontier for b in to.get(a, ())} - seen - {start}
                seen |= frontier
            for b in seen:
                inverse.setdefault(b, []).append(start)
        return {b: sorted(froms) for b, froms in inverse.items()}


def with_aliases(kv, alias_map: dict):
    """An image record under its own URL, and under every URL that revisits or redirects to it."""
    url, rec = kv
    yield url, rec
    for other in alias_map.get(url, ()):
        yield other, dataclasses.replace(rec, alias_of=url)


class CapturesUnderEveryName(beam.PTransform):
    """{'images': (canonical URL, ImageRecord), 'aliases': (canonical URL, Alias)} → (canonical URL,
    ImageRecord) for each record under its own URL, and under every URL that revisits or redirects to it
    (`alias_of` set to its own)."""

    def expand(self, inputs):
        images = inputs["images"]
        links = (inputs["aliases"]
                 | "SplitAliases" >> beam.FlatMap(split_aliases).with_outputs("by_digest", main="named"))
        by_digest = ({"original": images | "Digests" >> beam.FlatMap(digest_key), "revisit": links.by_digest}
                     | "JoinDigests" >> beam.CoGroupByKey() | "DigestAliases" >> beam.FlatMap(digest_aliases))
        alias_map = ((links.named, by_digest) | "AllAliases" >> beam.Flatten()
                     | "AliasMap" >> beam.CombineGlobally(AliasMap()))
        return images | "WithAliases" >> beam.FlatMap(with_aliases, beam.pvalue.AsSingleton(alias_map))

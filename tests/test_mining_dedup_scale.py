"""Crawl-wide dedup as the miner runs it: the `CrawlDedup` transform on the Beam DirectRunner, over a
synthetic crawl of a few thousand pictures with planted near copies and logos (tests/dedup_synthetic.py;
benchmarks/bench_dedup_beam.py runs the same at 1 M)."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

import dedup_synthetic as S


def test_crawl_dedup_finds_every_near_pair_and_marks_logos_only(settings, tmp_path):
    dedup = settings.stages.mine.dedup
    spec = S.Spec(n=3000, planted=300, popular=8, families=10, domains=40, shard_size=1000,
                  max_logo_pages=400, max_distance=dedup.near_dup_hamming, seed=5)
    with beam.Pipeline(options=PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"])) as p:
        S.build(p, spec, dedup, str(tmp_path))
    frequent, edges = set(S.read_ints(f"{tmp_path}/frequent*")), set(S.read_ints(f"{tmp_path}/edges*"))
    truth = S.truth(spec)

    brute = S.near(truth["distinct"], truth["distinct"], dedup.near_dup_hamming)  # all pairs: 3,4xx hashes
    assert truth["pairs"] <= brute and len(truth["pairs"]) == 300
    assert edges == brute  # recall 1.0, and nothing but verified pairs
    assert len(S.read_ints(f"{tmp_path}/edges*")) == len(edges)  # each pair once

    assert frequent == truth["logos"]  # every logo (on its own or by its family), no other picture
    logos = S.shard(spec, -1)
    family_members = S.to_signed(logos["logos"][logos["members"] >= 0]).tolist()
    assert len(family_members) >= 30 and len(logos["logos"]) - len(family_members) == 8
    signed = S.to_signed(truth["hash"])
    for h in family_members:  # frequent by its neighbourhood only: on its own, within both limits
        pages = truth["page"][signed == h].tolist()
        assert len(pages) <= dedup.max_pages_per_image
        assert len({S.domain_of(spec, x) for x in pages}) <= dedup.max_domains_per_image

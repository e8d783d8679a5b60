"""Canonical URLs (issue 11): spellings of one resource share a key, other resources keep apart."""
from __future__ import annotations

import pytest

from helpers import SHARED_WARC_REAL as REAL
from semantica.mining.urls import canonical_url
from semantica.mining.warc_io import iter_records


# ----------------------------------------------------------------------------- URL canonicalisation
@pytest.mark.parametrize("a,b", [
    ("HTTP://Example.ORG:80/a.png#top", "http://example.org/a.png"),
    ("https://example.org:443/a.png?", "https://example.org/a.png"),
    ("https://example.org", "https://example.org/"),
    ("https://example.org/%7euser/a%2fb.png", "https://example.org/~user/a%2Fb.png"),
    ("https://example.org/caf\u00e9.png", "https://example.org/caf%C3%A9.png"),
    ("https://example.org/a b.png", "https://example.org/a%20b.png"),
    ("https://b\u00fccher.de/a.png", "https://xn--bcher-kva.de/a.png"),
    ("https://example.org./a.png", "https://example.org/a.png"),
    # real pairs: as the page wrote it, as the crawler stored it
    ("https://upload.wikimedia.org/wikipedia/commons/thumb/a/a9/Example.jpg/220px-Example.jpg#",
     "https://upload.wikimedia.org/wikipedia/commons/thumb/a/a9/Example.jpg/220px-Example.jpg"),
])
def test_equivalent_urls_share_a_key(a, b):
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize("a,b", [
    ("http://example.org/a.png", "https://example.org/a.png"),       # another port, another server
    ("http://example.org:8080/a.png", "http://example.org/a.png"),
    ("http://www.example.org/a.png", "http://example.org/a.png"),
    ("http://example.org/A.png", "http://example.org/a.png"),
    ("http://example.org/a.png?x=1&y=2", "http://example.org/a.png?y=2&x=1"),
    ("http://example.org/a%2Fb.png", "http://example.org/a/b.png"),  # %2F is data, not a separator
    ("http://example.org/a+b.png", "http://example.org/a%20b.png"),
    ("http://user@example.org/a.png", "http://example.org/a.png"),
])
def test_urls_naming_other_resources_keep_apart(a, b):
    assert canonical_url(a) != canonical_url(b)


def test_canonical_url_leaves_what_it_cannot_parse():
    for s in ("data:image/png;base64,AAAA", "http://[bad/x", "mailto:a@b.org", "", "http://e.org:99999999/"):
        assert canonical_url(s) == s


# Real captures (WARC-Target-URI as stored) and how a page may spell the same resource
REAL_PAIRS = [
    ("browsertrix-1.1.1-solidaritenum.warc.gz",
     "https://www.solidarite-numerique.fr/wp-content/uploads/2021/02/"
     "ico%CC%82ne-de%CC%81buter-Solidarite%CC%81-Nume%CC%81rique_1@300x.png",
     "https://www.solidarite-numerique.fr/wp-content/uploads/2021/02/"
     "ico\u0302ne-de\u0301buter-Solidarite\u0301-Nume\u0301rique_1@300x.png"),
    ("browsertrix-1.1.1-solidaritenum.warc.gz",
     "https://www.solidarite-numerique.fr/wp-content/themes/snum-v2/images/page%20tutoriel/bloc%20sommaire/"
     "emailshare.svg",
     "https://WWW.solidarite-numerique.fr:443/wp-content/themes/snum-v2/images/page tutoriel/bloc%20sommaire/"
     "emailshare.svg#icon"),
    ("heritrix-3.1.1-gov.uk-BL-20140325121225068-00000-32090-opera-8443.warc.gz",
     "http://data.gov.uk/sites/default/files/styles/tile_text_big/public/Harvey-Lewis5016sf.jpg?itok=9ab6AOyK",
     "HTTP://Data.Gov.UK:80/sites/default/files/styles/tile_text_big/public/Harvey%2dLewis5016sf.jpg?itok=9ab6AOyK"),
]


def test_real_captures_are_found_under_the_spellings_pages_use():
    for name, stored, spelled in REAL_PAIRS:
        uris = {r.uri for r in iter_records(str(REAL / name), "fastwarc", 1, [])}
        assert stored in uris and spelled not in uris
        assert canonical_url(spelled) == canonical_url(stored) == stored

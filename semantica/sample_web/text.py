"""Words and HTML for sample-web pages: enough article text that a main-content
extractor sees an article, and alt text and captions that name the topic."""
from __future__ import annotations

import html
import random

from semantica.sample_web import drawing

WORDS = ("the", "a", "of", "and", "in", "with", "from", "this", "that", "our", "new", "photo", "shows",
         "seen", "near", "light", "morning", "garden", "city", "studio", "bright", "quiet", "detail",
         "surface", "pattern", "collection", "week", "story", "report", "visit", "local", "artist",
         "design", "material", "season", "market", "window", "table", "wall", "evening", "colour")
COLOURS = ("red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure", "blue", "violet",
           "magenta", "pink")
# Text for the pages that are not UTF-8, so a wrong decode is visible in the alt text.
LOCAL = {
    "shift_jis": ("写真", "今日の", "美しい", "形", "色", "記事", "作品"),
    "windows-1251": ("Фотография", "красивый", "форма", "цвет", "статья", "сегодня", "работа"),
}


def _topic_words(topic: int, num_topics: int) -> tuple[str, str]:
    shape = drawing.SHAPES[topic % len(drawing.SHAPES)]
    colour = COLOURS[int(drawing.topic_hue(topic, num_topics) * len(COLOURS)) % len(COLOURS)]
    return shape, colour


def slug(rng: random.Random) -> str:
    return "-".join(rng.choice(WORDS[10:]) for _ in range(3))


def sentence(rng: random.Random, topic: int, num_topics: int, charset: str = "utf-8", n: int = 0) -> str:
    shape, colour = _topic_words(topic, num_topics)
    words = [rng.choice(WORDS) for _ in range(n or rng.randint(8, 16))]
    words.insert(rng.randrange(len(words)), f"{colour} {shape}")
    if charset in LOCAL:
        words.insert(0, rng.choice(LOCAL[charset]))
    s = " ".join(words)
    return html.escape(s[0].upper() + s[1:] + ".")


def alt_text(rng: random.Random, topic: int, num_topics: int, charset: str = "utf-8") -> str:
    shape, colour = _topic_words(topic, num_topics)
    lead = rng.choice(LOCAL[charset]) + " " if charset in LOCAL else ""
    # plain words only (no &, <, >, quotes): the same string is the HTML attribute and the ground truth
    return f"{lead}A {colour} {shape} {rng.choice(('in the studio', 'outdoors', 'close up', 'on display'))}"


def nav(rng: random.Random) -> str:
    return " ".join(f'<a href="/{w}/">{w.title()}</a>' for w in rng.sample(WORDS[10:], 4))


def page_html(rng: random.Random, page, head_extra: list, header: str, figures: list, aside: list,
              footer: list, num_topics: int) -> str:
    """Assemble one page; paragraphs and figures interleave inside <article>."""
    title = sentence(rng, page.topic, num_topics, page.charset, n=5).rstrip(".")
    if page.charset == "shift_jis":
        meta = '<meta charset="shift_jis">'
    elif page.charset != "utf-8":
        meta = f'<meta http-equiv="Content-Type" content="text/html; charset={page.charset}">'
    else:
        meta = '<meta charset="utf-8">'
    body = [f"<h1>{title}</h1>"]
    paragraphs = ["<p>" + " ".join(sentence(rng, page.topic, num_topics, page.charset)
                                   for _ in range(rng.randint(3, 6))) + "</p>"
                  for _ in range(max(3, len(figures) + 1))]
    for i, p in enumerate(paragraphs):
        body.append(p)
        if i < len(figures):
            body.append(figures[i])
    body.extend(figures[len(paragraphs):])
    lang = {"shift_jis": "ja", "windows-1251": "ru"}.get(page.charset, "en")
    return (f'<!DOCTYPE html>\n<html lang="{lang}"><head>{meta}<title>{title}</title>'
            f'{"".join(head_extra)}<link rel="stylesheet" href="/static/style.css">'
            f'<script src="/static/app.js"></script></head>\n<body>{header}\n'
            f'<main><article>{"".join(body)}</article>\n<aside class="ads">{"".join(aside)}</aside></main>\n'
            f'<footer>{"".join(footer)}<p>&copy; {page.domain}</p></footer>\n</body></html>\n')

"""The named steps of MinePairs (mining/pipeline.py), one Beam composite transform a module.

  read_pages.ReadPages              WARC locations → pages (first capture of each URL), image records, aliases
  image_bytes.ResolveImageBytes     pages + image records + aliases → a result per kept reference, image bytes
    aliases.CapturesUnderEveryName    image records + revisits / redirects → each capture under every URL naming it
  frequent.FlagFrequentImages       results → results by page, those on too many pages or domains marked (CrawlDedup)
  assemble_pages.AssemblePages      pages + their results → refs/, pairs/, pages/ rows; the image ids used
  image_rows.ImageRows              used image ids + bytes → images/ rows

Each returns a dict of PCollections with its own 'stats' ((stage, reason), n) and 'failures' (failures/ rows);
the records between them are declared in mining/records.py. The logic is in plain functions (here, small
ones; the larger in ../extract.py, ../resolve.py, ../dedup.py, ../assemble.py), each element contained
on its own (../containment.py).
"""

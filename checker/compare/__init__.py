"""Routes to the same model, side by side: which is up, fast, cheap and honest.

stats (pure): Wilson intervals, the interval of a difference of medians, the ranking.
view (pure): the compare groups and their JSON, from per-route figures.
read: the store reads that feed the view (one window, one probe).
"""

__all__: list[str] = []

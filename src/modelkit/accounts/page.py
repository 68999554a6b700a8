"""The review page: the queue's items as the decisions page's cards, each headed by its question
(item id, category, priority, why it is in the queue, who reported it). Self-contained: a
reviewer opens it offline and writes answers (``item_id``, ``answer``) into a jsonl file."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..posts.page import CategoryColours, post_card, write_cards_page

SOURCES = {"review": "the models asked for review", "report": "reported by users",
           "pass_sample": "random sample of passed posts", "remove_sample": "random sample of removed posts",
           "unread": "parts could not be read", "appeal": "the account appealed its strike"}


def render_review_page(items: Sequence[Any], decisions: Mapping[str, Any], output: str | os.PathLike) -> Path:
    """Write the page of ``items`` (:class:`~modelkit.accounts.review.ReviewItem`, in queue order)
    whose posts' decisions are ``decisions`` (post id -> decision event)."""
    colours = CategoryColours()
    rows, cards = [], []
    for rank, item in enumerate(items, 1):
        decision = decisions.get(item.post_id)
        data = decision.data if decision is not None else {}
        row = {"id": item.post_id, "account_id": item.account_id, "action": data.get("action", "review"),
               "categories": [item.category], "scores": {item.category: item.score},
               "evidence": item.evidence, "unread": data.get("unread", [])}
        reports = f", {len(item.reporters)} reporters" if item.reporters else ""
        note = (f'<span class="note">#{rank} item <code>{html.escape(item.item_id)}</code>: '
                f"<strong>{html.escape(item.category)}</strong>? priority {item.priority:.3f}; "
                f"{html.escape(SOURCES.get(item.source, item.source))}{html.escape(reports)}</span>")
        rows.append(row)
        cards.append(post_card(row, data.get("post"), True, colours, note=note))
    intro = ('<p class="muted">Answer each item in a jsonl file, one line per item: '
             '<code>{"item_id": "...", "answer": "confirm" | "overturn", "reviewer": "you", '
             '"category": "another category, if it is one"}</code>, then '
             "<code>modelkit review import ANSWERS.jsonl --ledger URL</code>.</p>")
    return write_cards_page(rows, cards, Path(output), "Review queue", "review.html", intro)

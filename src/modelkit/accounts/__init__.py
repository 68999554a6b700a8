"""Accounts and reviewers: the platform loop around post decisions.

``modelkit moderate --ledger URL`` records decisions in an append-only :class:`Ledger` (any
SQLAlchemy database; a SQLite file by default): ``remove`` decisions strike their accounts,
``review`` decisions and samples become review items. User reports raise items' priority by
their reporters' learned reliability; reviewers' answers confirm or overturn strikes and become
labelled rows; an :class:`EscalationPolicy` (YAML beside the taxonomy) turns an account's
standing strikes into the penalty it is under at any time. See docs/accounts.md.
"""

from .calibrate import refit_policy
from .escalation import AccountState, EscalationPolicy, Penalty, Strike
from .ledger import Event, Ledger, LedgerError, item_id, open_ledger
from .record import LedgerWriter, Sampling, appeal, ingest_reports, record_decisions
from .review import (ImportSummary, ReviewItem, export_queue, import_answers, labelled_rows, reporter_reliability,
                     review_queue)
from .state import account_state, account_states, timeline

__all__ = [
    "AccountState", "EscalationPolicy", "Event", "ImportSummary", "Ledger", "LedgerError", "LedgerWriter", "Penalty",
    "ReviewItem", "Sampling", "Strike", "account_state", "account_states", "appeal", "export_queue", "import_answers",
    "ingest_reports", "item_id", "labelled_rows", "open_ledger", "record_decisions", "refit_policy",
    "reporter_reliability", "review_queue", "timeline",
]

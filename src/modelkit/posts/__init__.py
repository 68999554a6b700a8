"""Post-level moderation: one decision per post from its text, pictures and video.

posts -> each member classifier's outputs -> fusion (``max``, ``noisy_or`` or a learned head) ->
:class:`PostPolicy` -> :class:`Decision` (action, categories, scores, evidence, unread parts).
Core: members are driven through the classifier's outputs and explainers through the registry
in :mod:`modelkit.explain`; no modality is imported.
"""

from .fusion import LateFusionModel, PartScoresProcessor, fuse
from .moderator import Decision, DecisionBatch, Moderator, ModeratorConfig, load_moderator
from .policy import ACTIONS, PostPolicy
from .post import Part, Post, post_from_row
from .run import ModerateJob, moderate_files, read_decisions, read_posts

__all__ = ["ACTIONS", "Decision", "DecisionBatch", "LateFusionModel", "ModerateJob", "Moderator", "ModeratorConfig",
           "Part", "PartScoresProcessor", "Post", "PostPolicy", "fuse", "load_moderator", "moderate_files",
           "post_from_row", "read_decisions", "read_posts"]

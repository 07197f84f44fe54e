"""Goals the participant writes for themselves, for arms with `participant_goals: true`.

The assistant is told to support these goals as the participant understands them (see
conversation.py): consented guidance in the participant's own words, not values the study
imposes. The participant sees, edits and deletes them on the chat's goals page; they are
encrypted at rest and every change is audited without its text.
"""

from __future__ import annotations

from ..models import ParticipantGoal
from .memory import ParticipantTexts, TextRefused

goals = ParticipantTexts(ParticipantGoal, noun="goal", max_count=5, max_length=300)

__all__ = ["TextRefused", "goals"]

"""The domain's tables. Import from here; the submodules group them by concern."""

from sqlmodel import SQLModel

from .accounts import ApiKey, Researcher
from .assistant import ChatSession, ChatTurn, MemoryNote, ParticipantGoal
from .audit import AuditEvent
from .conversations import SmsConversation
from .enrollment import EnrollmentProgress, Invitation
from .interactions import Interaction
from .operations import ServiceHeartbeat
from .participants import Allocation, Consent, ContactPoint, Participant
from .responses import ItemResponse, Response
from .schedule import InboundMessage, Occasion, OutboundMessage, SendBudget
from .studies import Arm, ProtocolVersion, Study
from .types import UTCDateTime, utcnow

metadata = SQLModel.metadata

__all__ = [
    "Allocation",
    "ApiKey",
    "Arm",
    "AuditEvent",
    "ChatSession",
    "ChatTurn",
    "Consent",
    "ContactPoint",
    "EnrollmentProgress",
    "InboundMessage",
    "Interaction",
    "Invitation",
    "ItemResponse",
    "MemoryNote",
    "Occasion",
    "OutboundMessage",
    "Participant",
    "ParticipantGoal",
    "ProtocolVersion",
    "Researcher",
    "Response",
    "SendBudget",
    "ServiceHeartbeat",
    "SmsConversation",
    "Study",
    "UTCDateTime",
    "metadata",
    "utcnow",
]

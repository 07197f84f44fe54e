"""The dashboards' data: plain functions over a database session returning pandas frames.

Nothing here imports Dash or Flask. Each page module calls these and only draws the result, so
the same numbers can be tested on a hand-built study and reused by the CLI or a report.
"""

from .common import Filters, StudyChoice, arm_keys, arm_labels, participants_frame, studies
from .compliance import (
    compliance_frame,
    delivery_failures,
    late_and_missed,
    response_rates,
    status_matrix,
)
from .overview import consort_flow, enrollment_over_time, enrollment_target
from .people import find_participant, message_queue, timeline

__all__ = [
    "Filters",
    "StudyChoice",
    "arm_keys",
    "arm_labels",
    "compliance_frame",
    "consort_flow",
    "delivery_failures",
    "enrollment_over_time",
    "enrollment_target",
    "find_participant",
    "late_and_missed",
    "message_queue",
    "participants_frame",
    "response_rates",
    "status_matrix",
    "studies",
    "timeline",
]

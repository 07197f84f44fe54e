"""The study protocol's schema: strict, frozen pydantic models, one per section.

Each model checks the shape and range of its own values. Rules that relate several values
(ratio keys against arm keys, windows against intervals, ...) live in `checks.py`, which can
report all of them at once with the line of each offending field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from .types import (
    Answer,
    DurationField,
    Email,
    EnvVarName,
    HttpUrl,
    Identifier,
    InstrumentId,
    LanguageCode,
    LocalizedText,
    LocalTime,
    Number,
    RelativePath,
    Slug,
    Text,
)

StrictFloat = Annotated[float, Field(strict=True)]


class Section(BaseModel):
    """Base of every protocol model: unknown keys are errors and loaded values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- study --------------------------------------------------------------------------------------


class Person(Section):
    name: Text
    email: Email
    affiliation: Text | None = None
    phone: Text | None = None


class Registration(Section):
    """A trial registration, e.g. `{registry: ClinicalTrials.gov, id: NCT01234567}`."""

    registry: Text
    id: Text
    url: HttpUrl | None = None


class StudyInfo(Section):
    """The study. `title` and `description` are for researchers and registries; participants
    see `public_title` and `public_description` where given, so that a title naming the
    hypothesis or the arms never reaches them."""

    slug: Slug
    title: Annotated[Text, Field(max_length=300)]
    description: Text
    public_title: LocalizedText | None = None
    public_description: LocalizedText | None = None
    principal_investigator: Person
    contact: Person
    registrations: tuple[Registration, ...] = ()
    target_enrollment: Annotated[StrictInt, Field(gt=0)]
    languages: Annotated[tuple[LanguageCode, ...], Field(min_length=1)] = ("en",)
    default_language: LanguageCode = "en"
    version_note: Text | None = None

    def title_for_participants(self, language: str) -> str:
        """The public title in `language` (falling back to English, then any), else `title`."""
        return _pick(self.public_title, language) or self.title

    def description_for_participants(self, language: str) -> str:
        return _pick(self.public_description, language) or self.description


def _pick(text: dict[str, str] | None, language: str) -> str:
    if not text:
        return ""
    return text.get(language) or text.get("en") or next(iter(text.values()))


# --- arms ---------------------------------------------------------------------------------------


class Assistant(Section):
    """An OpenAI-compatible chat endpoint and how this arm's assistant is configured."""

    provider: Literal["openai-compatible"]
    base_url: HttpUrl
    model: Text
    api_key_env: EnvVarName
    system_prompt_file: RelativePath | None = None
    constitution_file: RelativePath | None = None
    temperature: Annotated[StrictFloat, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[StrictFloat, Field(gt=0, le=1)] = 1.0
    max_tokens: Annotated[StrictInt, Field(gt=0, le=32768)] = 1024
    seed: StrictInt | None = None
    memory: Literal["none", "session", "longitudinal"] = "session"
    participant_goals: StrictBool = False

    @property
    def instructions_file(self) -> str:
        """The file whose text instructs the model (system prompt or constitution)."""
        return self.system_prompt_file or self.constitution_file or ""


class ArmSpec(Section):
    """An arm. `name` and `description` are for researchers; participants are told only
    `participant_description` (in their language), so researcher notes never reach them."""

    key: Identifier
    name: Annotated[Text, Field(max_length=200)]
    description: Text
    participant_description: LocalizedText | None = None
    assistant: Assistant | None
    preference: StrictBool = False


# --- allocation ---------------------------------------------------------------------------------


class StratumFactor(Section):
    """A stratification factor: levels of a screening answer or cut points of a baseline score.

    Exactly one of `question` (an eligibility question id) or `instrument` (+ `score`) is given.
    `cut_points: [13]` makes levels `<13` and `>=13`; `labels` may name them.
    """

    name: Identifier
    question: Identifier | None = None
    instrument: InstrumentId | None = None
    score: Identifier | None = None
    cut_points: tuple[Number, ...] = ()
    labels: tuple[Identifier, ...] = ()


class PreferenceDesign(Section):
    """A partially randomised preference trial: who states a preference gets that arm.

    `question` is a screening question of type `choice` whose option values are the keys of
    arms marked `preference: true`, plus `randomise_value`, the answer of those without a strong
    preference, who are randomised as usual.
    """

    question: Identifier
    randomise_value: Text


class AllocationSpec(Section):
    scheme: Literal["permuted_blocks", "minimisation", "simple"]
    ratio: dict[Identifier, Annotated[StrictInt, Field(gt=0)]]
    block_sizes: tuple[Annotated[StrictInt, Field(gt=0)], ...] = ()
    strata: tuple[StratumFactor, ...] = ()
    probability: Annotated[StrictFloat, Field(ge=0.5, le=1)] | None = None
    seed_env: EnvVarName | None = None
    preference_arm: PreferenceDesign | None = None

    @property
    def ratio_sum(self) -> int:
        return sum(self.ratio.values())


# --- eligibility --------------------------------------------------------------------------------


class ChoiceOption(Section):
    value: Text
    text: LocalizedText


class EligibilityRule(Section):
    """`{min: 18}`, `{max: 99}`, `{equals: true}` or `{in: [a, b]}`; the rule must fit the type."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    min: Number | None = None
    max: Number | None = None
    equals: Answer | None = None
    in_: Annotated[tuple[Text, ...] | None, Field(alias="in")] = None


class EligibilityQuestion(Section):
    id: Identifier
    text: LocalizedText
    type: Literal["yes_no", "number", "choice"]
    options: tuple[ChoiceOption, ...] = ()
    eligible_if: EligibilityRule | None = None


class Eligibility(Section):
    questions: tuple[EligibilityQuestion, ...]
    ineligible_message: LocalizedText


# --- consent ------------------------------------------------------------------------------------


class ComprehensionQuestion(Section):
    id: Identifier
    question: LocalizedText
    options: Annotated[tuple[ChoiceOption, ...], Field(min_length=2)]
    correct: Text


class OptionalConsentItem(Section):
    id: Identifier
    text: LocalizedText
    default: StrictBool = False


class ConsentSpec(Section):
    document: RelativePath
    version: Annotated[Text, Field(max_length=32)]
    comprehension: tuple[ComprehensionQuestion, ...] = ()
    optional_items: tuple[OptionalConsentItem, ...] = ()
    data_on_withdrawal: Literal["keep", "erase"]


# --- instruments --------------------------------------------------------------------------------


def _instrument_shorthand(value: Any) -> Any:
    return {"id": value} if isinstance(value, str) else value


class InstrumentRef(Section):
    """An instrument by id; `file` supplies a study-local definition instead of the library's,
    `wording` a wording file (local wording or a translation, see docs/instruments.md)."""

    id: InstrumentId
    file: RelativePath | None = None
    wording: RelativePath | None = None


InstrumentEntry = Annotated[InstrumentRef, BeforeValidator(_instrument_shorthand)]


# --- schedule -----------------------------------------------------------------------------------


class _Entry(Section):
    instruments: Annotated[tuple[InstrumentId, ...], Field(min_length=1)]


class BaselineEntry(_Entry):
    """Opens at enrollment; without `window` it stays open until completed."""

    kind: Literal["baseline"]
    at: Literal["enrollment"] = "enrollment"
    window: DurationField | None = None
    reminders: tuple[DurationField, ...] = ()


class WaveEntry(_Entry):
    """Repeats `every` interval from `start` after enrollment, `count` times or `until` an offset.

    Without `start` the first wave is one interval after enrollment.
    """

    kind: Literal["wave"]
    every: DurationField
    start: DurationField | None = None
    count: Annotated[StrictInt, Field(gt=0)] | None = None
    until: DurationField | None = None
    local_time: LocalTime
    window: DurationField
    reminders: tuple[DurationField, ...] = ()

    @property
    def first_offset(self):
        """The offset of the first wave: `start`, or one interval after enrollment."""
        return self.start if self.start is not None else self.every


class FollowupEntry(_Entry):
    kind: Literal["followup"]
    at: DurationField
    local_time: LocalTime
    window: DurationField
    reminders: tuple[DurationField, ...] = ()


class EmaEntry(_Entry):
    """`per_day` prompts at random times in `daily_window`, for `days` days from `start`."""

    kind: Literal["ema"]
    start: DurationField | None = None
    days: Annotated[StrictInt, Field(gt=0)]
    per_day: Annotated[StrictInt, Field(gt=0, le=24)]
    daily_window: tuple[LocalTime, LocalTime]
    min_spacing: DurationField
    expires_after: DurationField
    opt_in: StrictBool = False


ScheduleEntry = Annotated[
    BaselineEntry | WaveEntry | FollowupEntry | EmaEntry, Field(discriminator="kind")
]


# --- channels -----------------------------------------------------------------------------------


class SmsSettings(Section):
    sender: Text
    notes: Text | None = None


class EmailSettings(Section):
    from_name: Text
    reply_to: Email | None = None


class QuietHours(Section):
    """No message is sent between `start` and `end` in the participant's local time."""

    start: LocalTime
    end: LocalTime


class Channels(Section):
    allowed: Annotated[tuple[Literal["sms", "email", "web"], ...], Field(min_length=1)]
    default: Literal["sms", "email", "web"]
    sms: SmsSettings | None = None
    email: EmailSettings | None = None
    quiet_hours: QuietHours | None = None


# --- the protocol -------------------------------------------------------------------------------


class ProtocolModel(Section):
    """A whole study protocol. Load it with `study.protocol.load_protocol`, which also runs the
    cross-field checks and reads the files it refers to."""

    study: StudyInfo
    arms: Annotated[tuple[ArmSpec, ...], Field(min_length=1)]
    allocation: AllocationSpec
    eligibility: Eligibility
    consent: ConsentSpec
    instruments: Annotated[tuple[InstrumentEntry, ...], Field(min_length=1)]
    schedule: Annotated[dict[Identifier, ScheduleEntry], Field(min_length=1)]
    channels: Channels

    def arm(self, key: str) -> ArmSpec:
        """The arm with `key` (KeyError if there is none)."""
        for arm in self.arms:
            if arm.key == key:
                return arm
        raise KeyError(key)

    @property
    def instrument_ids(self) -> tuple[str, ...]:
        return tuple(instrument.id for instrument in self.instruments)

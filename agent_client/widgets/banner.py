"""The call banner: the screen pop the switch sends with a queue call (caller, queue, the path
through the IVR, the variables the dialplan marked for display).

A field marked sensitive arrives masked when the agent's location may not see personal data;
the banner shows the mask the switch sent and says why, and never shows more. Every text here
is customer data or comes from the caller: it is shown as plain text (no rich-text markup from
a caller's display name) and never logged."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from agent_client.view import Offer, Phase, ScreenPopField, View
from agent_client.widgets.durations import format_duration
from agent_client.widgets.tone import set_tone

__all__ = ["MASKED_NOTE", "CallBanner", "masked_text"]

MASKED_NOTE = "(personal data, not shown at your location)"


def masked_text(field: ScreenPopField) -> str:
    """What the banner shows for a field: its value, or the switch's mask and the reason."""
    if not field.masked:
        return field.value
    return f"{field.value or '••••'} {MASKED_NOTE}"


def _plain(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    return label


class CallBanner(QGroupBox):
    """The offered or connected call. Rebuilt only when the offer changes, so the agent can
    select and copy a value while the call timer ticks."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Call", parent)
        self.setObjectName("banner")
        self._offer: Offer | None = None

        self.headline = _plain("No call")
        self.headline.setObjectName("bannerHeadline")
        self.caller = _plain()
        self.caller.setObjectName("caller")
        self.queue = _plain()
        self.path = _plain()
        self.status = _plain()
        self.status.setObjectName("callStatus")
        self.fields = QFormLayout()
        self.fields.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        #: the field labels as shown, in order: (name label, value label)
        self.field_labels: list[tuple[QLabel, QLabel]] = []

        box = QVBoxLayout(self)
        box.addWidget(self.headline)
        box.addWidget(self.caller)
        box.addWidget(self.queue)
        box.addWidget(self.path)
        box.addLayout(self.fields)
        box.addWidget(self.status)
        box.addStretch(1)

    def _headline(self, view: View) -> str:
        if view.phase is Phase.RINGING:
            return "Incoming call"
        if view.phase is Phase.WRAP_UP:
            return "Call ended — wrap-up"
        return "On call"

    def _set_offer(self, offer: Offer | None) -> None:
        if offer == self._offer:
            return
        self._offer = offer
        while self.fields.rowCount():
            self.fields.removeRow(0)
        self.field_labels = []
        if offer is None:
            for label in (self.caller, self.queue, self.path):
                label.clear()
            return
        who = offer.caller or "unknown number"
        self.caller.setText(f"{who} — {offer.caller_name}" if offer.caller_name else who)
        about = [f"Queue: {offer.queue}"] if offer.queue else []
        if offer.data_class:
            about.append(f"Data class: {offer.data_class}")
        self.queue.setText(" · ".join(about))
        self.queue.setVisible(bool(about))
        self.path.setText(("IVR path: " + " → ".join(offer.path)) if offer.path else "")
        self.path.setVisible(bool(offer.path))
        for field in offer.fields:
            name = _plain(f"{field.name}:")
            value = _plain(masked_text(field))
            if field.masked:
                set_tone(value, "muted")
                value.setToolTip("Your location may not see personal data of this call.")
            self.fields.addRow(name, value)
            self.field_labels.append((name, value))

    def show_view(self, view: View) -> None:
        offer = view.offer
        self._set_offer(offer)
        if offer is None:
            self.headline.setText("No call")
            set_tone(self.headline, "muted")
            self.status.clear()
            return
        self.headline.setText(self._headline(view))
        set_tone(self.headline, "warn" if view.phase is Phase.RINGING else "")
        notes: list[str] = []
        if view.call_seconds is not None and view.phase is Phase.ON_CALL:
            notes.append(f"Talking {format_duration(view.call_seconds)}")
        if view.on_hold:
            notes.append("Customer on hold")
        if view.consulting:
            notes.append(f"Consulting {view.consulting} — customer on hold")
        if view.muted:
            notes.append("Microphone muted")
        if view.help_raised:
            notes.append("Hand raised: a supervisor has been asked")
        self.status.setText(" · ".join(notes))

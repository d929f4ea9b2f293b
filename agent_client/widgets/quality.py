"""Live call quality from the RTP/RTCP stream statistics (RFC 3550 §6.4 jitter and loss, the
round trip from RTCP), with the estimated MOS and a warning when the audio degrades."""

from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QWidget

from agent_client.view import CallQuality, View
from agent_client.widgets.tone import set_tone

__all__ = ["DEGRADED_WARNING", "QualityPanel", "quality_texts"]

DEGRADED_WARNING = "Call quality is poor: the customer may hear gaps. Check your connection."


def quality_texts(quality: CallQuality) -> tuple[str, str, str, str]:
    """Jitter, loss, round trip and MOS as the panel shows them."""
    rtt = f"{quality.rtt_ms:.0f} ms" if quality.rtt_ms is not None else "—"
    return (
        f"{quality.jitter_ms:.0f} ms",
        f"{quality.loss_percent:.1f} %",
        rtt,
        f"{quality.mos:.1f}",
    )


class QualityPanel(QGroupBox):
    """Figures while a call has audio; the warning shows only while the view says degraded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Call quality", parent)
        self.jitter = QLabel("—")
        self.loss = QLabel("—")
        self.rtt = QLabel("—")
        self.mos = QLabel("—")
        self.mos.setObjectName("mos")
        self.warning = QLabel(DEGRADED_WARNING)
        self.warning.setObjectName("qualityWarning")
        self.warning.setWordWrap(True)
        set_tone(self.warning, "error")
        self.warning.setVisible(False)

        grid = QGridLayout(self)
        for column, (name, value) in enumerate(
            (
                ("Jitter", self.jitter),
                ("Loss", self.loss),
                ("Round trip", self.rtt),
                ("MOS", self.mos),
            )
        ):
            grid.addWidget(QLabel(name), 0, column)
            grid.addWidget(value, 1, column)
        grid.addWidget(self.warning, 2, 0, 1, 4)

    def show_view(self, view: View) -> None:
        quality = view.quality
        if quality is None:
            for label in (self.jitter, self.loss, self.rtt, self.mos):
                label.setText("—")
            self.warning.setVisible(False)
            return
        texts = quality_texts(quality)
        for label, text in zip((self.jitter, self.loss, self.rtt, self.mos), texts, strict=True):
            label.setText(text)
        set_tone(self.mos, "error" if quality.degraded else "ok")
        self.warning.setVisible(quality.degraded)

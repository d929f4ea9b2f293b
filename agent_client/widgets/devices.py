"""The headset: input and output devices (as PortAudio names them), the microphone and
speaker level meters, and the test call that checks the audio end to end."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from agent_client.view import Actions, Devices, Phase, View

__all__ = ["DevicesPanel"]

SYSTEM_DEFAULT = "System default"


def _meter() -> QProgressBar:
    meter = QProgressBar()
    meter.setRange(0, 100)
    meter.setTextVisible(False)
    meter.setMaximumHeight(12)
    return meter


class DevicesPanel(QGroupBox):
    """The lists are refilled only when the devices change, so a list the agent has opened is
    not closed by the next view; a choice calls :meth:`Actions.choose_devices` with both
    devices (None: the system's default)."""

    def __init__(self, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__("Headset", parent)
        self._actions = actions
        self._devices: Devices | None = None

        self.input = QComboBox()
        self.output = QComboBox()
        self.mic = _meter()
        self.mic.setObjectName("micLevel")
        self.speaker = _meter()
        self.speaker.setObjectName("speakerLevel")
        self.test_call = QPushButton("Test call")
        self.test_call.setToolTip("Call the switch's echo test to hear yourself")

        grid = QGridLayout(self)
        grid.addWidget(QLabel("Microphone"), 0, 0)
        grid.addWidget(self.input, 0, 1)
        grid.addWidget(self.mic, 1, 1)
        grid.addWidget(QLabel("Speaker"), 2, 0)
        grid.addWidget(self.output, 2, 1)
        grid.addWidget(self.speaker, 3, 1)
        grid.addWidget(self.test_call, 4, 1)
        grid.setColumnStretch(1, 1)

        self.input.activated.connect(self._chosen)
        self.output.activated.connect(self._chosen)
        self.test_call.clicked.connect(self._actions.test_call)

    @staticmethod
    def _choice(combo: QComboBox) -> str | None:
        return None if combo.currentIndex() <= 0 else combo.currentText()

    def _chosen(self) -> None:
        self._actions.choose_devices(self._choice(self.input), self._choice(self.output))

    @staticmethod
    def _fill(combo: QComboBox, names: tuple[str, ...], chosen: str | None) -> None:
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(SYSTEM_DEFAULT)
        combo.addItems(list(names))
        combo.setCurrentIndex(
            names.index(chosen) + 1 if chosen is not None and chosen in names else 0
        )
        combo.blockSignals(False)

    def show_view(self, view: View) -> None:
        if view.devices != self._devices:
            self._fill(self.input, view.devices.inputs, view.devices.input)
            self._fill(self.output, view.devices.outputs, view.devices.output)
            self._devices = view.devices
        self.mic.setValue(round(min(max(view.mic_level, 0.0), 1.0) * 100))
        self.speaker.setValue(round(min(max(view.speaker_level, 0.0), 1.0) * 100))
        # a test call needs the phone registered and no queue call that could ring meanwhile
        self.test_call.setEnabled(view.registered and view.phase is Phase.NOT_READY)

"""Speech-to-text: typed events and the stream interface every STT provider implements."""

from callserver.stt.base import SpeechStarted, SttEvent, SttStream, Transcript, UtteranceEnd

__all__ = ["SpeechStarted", "SttEvent", "SttStream", "Transcript", "UtteranceEnd"]

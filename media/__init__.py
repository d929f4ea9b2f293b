"""Media engine: RTP, codecs, jitter buffer, DTMF, mixing (no dependency on softswitch)."""

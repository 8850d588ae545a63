"""Science data processing (SDP): telemetry packets -> archived ``_uncal`` products."""

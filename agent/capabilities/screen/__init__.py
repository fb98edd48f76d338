"""Screen view and remote control: capture, tile encoding, pacing and input injection."""

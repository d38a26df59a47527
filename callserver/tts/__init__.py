"""Text-to-speech providers: each streams mu-law 8 kHz audio for one phrase as it is generated."""

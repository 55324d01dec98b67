"""Centrifugo, the real-time server: channel names, connection tokens, and the publisher."""

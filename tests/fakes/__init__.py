"""Local stand-ins for outside services (Twilio), used by tests only; none touches the network."""

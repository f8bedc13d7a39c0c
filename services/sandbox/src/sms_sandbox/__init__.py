"""A local stand-in for Twilio's Messages API, status callbacks and inbound webhooks."""

"""Softswitch: an asyncio SIP registrar and B2BUA for call centers."""

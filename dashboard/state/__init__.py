"""What SalesIQ told us, applied to the stored state: chats, operators, transcripts."""
